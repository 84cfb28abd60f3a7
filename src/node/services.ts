/**
 * A node's services around its apps, in every mode (`foreground`, `console`, `daemon`): the
 * node lock (one node per node name), the cookie, the control socket every control command goes
 * through, the pid file, and for a daemon its console.log and the start status the launcher's
 * `start` waits on. Torn down in reverse when the node stops.
 */
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COOKIE, launcher as launcherFile, releasePath, versionedLauncher } from '../contract/layout.js';
import type { Duplex } from 'node:stream';
import { captureStdio, ConsoleLog, consoleLogSink, logSettings } from './console-log.js';
import { parseHostPort, startControlServer, startControlTcpServer, type ControlServer, type ControlService, type ControlTcpServer } from './control.js';
import { resolveCookie, takeCookieFromEnv } from './cookie.js';
import { BootError } from './errors.js';
import type { LogControl, Logger } from './log.js';
import { createLogger } from './log.js';
import { evaluate } from './evaluate.js';
import { randomBytes } from './digest.js';
import { acquireNodeLock, type NodeLock } from './node-lock.js';
import { planNode, runForeground, type NodeHandle } from './node.js';
import type { MasterOptions } from './master.js';
import { removePidFile, writePidFile } from './pid-file.js';
import { readLaunchEnv, type LaunchEnv } from './launch-env.js';
import type { TlsServerConfig } from './control-tls.js';
import { holdListeningSockets, type SingleProcessHandover } from './single.js';

export type NodeMode = 'foreground' | 'console' | 'daemon';

/** Writes the status file the launcher's `start` polls: `ready <pid>`, `running <pid>`, `failed <why>`. */
function reportStart(env: NodeJS.ProcessEnv, verdict: 'ready' | 'running' | 'failed', detail: string): void {
  const file = env.NODEREL_START_STATUS;
  if (!file) return;
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${verdict} ${detail.replace(/\s*\n\s*/g, ' ')}\n`);
  renameSync(tmp, file);
  delete env.NODEREL_START_STATUS; // reported once
}

/** `releases/COOKIE` for a release unpacked from a tarball (which never carries the cookie). */
function ensureReleaseCookie(root: string): void {
  const file = releasePath(root, COOKIE);
  if (existsSync(file)) return;
  try {
    writeFileSync(file, randomBytes(32).toString('base64url'), { mode: 0o400, flag: 'wx' });
  } catch {
    // read-only release, or another node just wrote it: resolution says what it finds
  }
}

/** The log lines that could not be written (a full disk), for status. */
function logStatus(consoleLog: ConsoleLog | undefined, control: LogControl): Record<string, unknown> {
  const d = consoleLog?.dropped;
  const sinkFailures = control.dropped ?? 0;
  return {
    file: consoleLog?.file ?? null,
    dropped_lines: (d?.lines ?? 0) + sinkFailures,
    unreported_lines: d?.unreported ?? 0,
    ...(d?.lastError ? { last_error: d.lastError } : {}),
  };
}

async function statusOf(handle: NodeHandle | undefined, info: { name: string; release: string; version: string }, appNames: readonly string[], log?: Record<string, unknown>): Promise<Record<string, unknown>> {
  const workers = (await handle?.workers?.()) ?? [];
  return {
    node: info.name,
    release: info.release,
    version: info.version,
    pid: process.pid,
    uptime_s: Math.round(process.uptime()),
    stage: handle ? (handle.ready ? handle.lifecycle.stage : 'starting') : 'starting',
    in_flight: handle?.workers ? workers.reduce((n, w) => n + (w.in_flight ?? 0), 0) : handle?.lifecycle.inFlight ?? 0,
    // a master's apps run in its workers: the node type's apps, as each worker runs them all
    apps: handle?.workers ? [...appNames] : handle ? [...handle.apps.keys()] : [],
    memory: process.memoryUsage(),
    workers,
    spawn_loop: handle?.spawnLoop?.() ?? [],
    // a master: how many workers it keeps; and why the node serves less than it should
    ...(handle?.workerTarget ? { workers_target: handle.workerTarget() } : {}),
    ...(handle?.degraded?.() ? { degraded: handle.degraded() } : {}),
    ...(log ? { log } : {}),
  };
}

/** The TCP control port's certificate and key (control-tls.ts, loaded only when they are set). */
async function loadControlTls(files: LaunchEnv['controlTls']): Promise<TlsServerConfig | undefined> {
  if (files.certFile === undefined && files.keyFile === undefined) return undefined;
  const { loadTlsServerConfig } = await import('./control-tls.js');
  return loadTlsServerConfig(files.certFile, files.keyFile);
}

/** A REPL inside the node on a control socket (attach, remote_console). */
async function socketRepl(handle: NodeHandle | undefined, socket: Duplex, args: unknown[], onClose?: () => void): Promise<void> {
  if (!handle?.ready) {
    socket.end('the node is still starting; try again in a moment\n');
    return;
  }
  const { startNodeRepl } = await import('./repl.js'); // node:repl is loaded only when used
  const [cols, rows, timeoutMs] = args;
  Object.assign(socket, { columns: Number(cols) || 80, rows: Number(rows) || 24, isTTY: true });
  // each input's time limit, from the client's --timeout
  const limit = Number(timeoutMs) > 0 ? Number(timeoutMs) : undefined;
  const server = startNodeRepl(handle, { input: socket, output: socket, terminal: true, timeoutMs: limit, onExit: () => socket.end() });
  socket.on('close', () => {
    onClose?.();
    server.close();
  });
  socket.on('error', () => socket.destroy());
}

/** The node lock for a master started by USR2: taken in the background once the old master exits. */
function lockLater(runDir: string): NodeLock {
  let held: NodeLock | undefined;
  let released = false;
  void acquireNodeLock(runDir, { waitMs: 365 * 24 * 3600 * 1000 }).then((r) => {
    if (!r.acquired) return;
    if (released) r.lock.release();
    else held = r.lock;
  });
  return {
    release() {
      released = true;
      held?.release();
    },
  };
}

/**
 * A single-process node's answers to the unicorn signals: HUP reloads the config (or reopens the
 * logs with NODEREL_HUP=reopen_logs; a node running a program app is replaced instead, `replace`), USR2 starts a new node on the same sockets (single.ts); the
 * ones that only make sense with workers are logged and ignored rather than left to their default
 * action (TT* would stop the node).
 */
function singleProcessSignals(
  log: Logger,
  handle: () => NodeHandle | undefined,
  reopenLogs: () => void,
  replace: (() => Promise<unknown>) | undefined,
  usr2: () => void,
): void {
  process.on('SIGHUP', () => {
    log.info('received SIGHUP');
    if (process.env.NODEREL_HUP === 'reopen_logs') return reopenLogs();
    if (replace) return void replace();
    void handle()
      ?.reloadConfig()
      .catch((err: unknown) => log.error(`HUP: reload failed: ${err instanceof Error ? err.message : String(err)}`));
  });
  process.on('SIGUSR2', usr2);
  for (const signal of ['SIGWINCH', 'SIGTTIN', 'SIGTTOU'] as const) {
    process.on(signal, () => log.info(`${signal} ignored: this node type runs in a single process (workers: 0)`));
  }
}

/** Runs the node with its services; resolves with the exit code. */
export async function runNode(mode: NodeMode, control: LogControl, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const launch = readLaunchEnv(env);
  let consoleLog: ConsoleLog | undefined;
  if (mode === 'daemon') {
    // JS output goes through the rotating log; the launcher pointed fds 1 and 2 at the same file.
    const dir = env.NODEREL_LOG_DIR || join(launch.logDir, launch.nodeName ?? 'node');
    consoleLog = new ConsoleLog({ file: join(dir, 'console.log'), ...logSettings(env) });
    captureStdio(consoleLog);
    // The node's own lines go straight to the log: fds 1 and 2 still point at the file the
    // launcher opened, which is the old one after a rename and reopen.
    control.sink = consoleLogSink(consoleLog);
  }
  // Whatever ends the process before it reported (an app calling process.exit while booting, even
  // with code 0), `start` hears of it at once, with the code.
  process.on('exit', (code) => {
    if (env.NODEREL_START_STATUS) reportStart(env, 'failed', `the node exited with code ${code} before it was ready (an app called process.exit or crashed while starting)`);
  });
  let plan;
  try {
    plan = planNode(launch, env);
  } catch (err) {
    if (err instanceof BootError) reportStart(env, 'failed', err.message);
    throw err;
  }
  const log: Logger = createLogger(plan.info.name, control);
  const runDir = env.NODEREL_RUN_DIR || join(launch.releaseTmp, plan.info.name);
  mkdirSync(runDir, { recursive: true, mode: 0o700 });

  // A master started by USR2 runs beside the old one, which holds the lock: it takes the lock
  // over when the old master is gone (the old one starts at most one successor at a time).
  const reexec = Boolean(env.NODEREL_REEXEC && process.send);
  const lock = reexec ? { acquired: true as const, lock: lockLater(runDir) } : await acquireNodeLock(runDir);
  if (!lock.acquired) {
    const holder = lock.heldBy === undefined ? '' : ` (pid ${lock.heldBy})`;
    reportStart(env, 'running', String(lock.heldBy ?? '?'));
    process.stderr.write(`Node ${plan.info.name} is already running${holder}\n`);
    return 1;
  }

  let handle: NodeHandle | undefined;
  let server: ControlServer | undefined;
  let tcpServer: ControlTcpServer | undefined;
  let handedOver = false;
  let renamedCtl: number | undefined;
  let single: SingleProcessHandover | undefined;
  const pidFile = join(runDir, 'node.pid');
  const programApps = plan.nodeType.apps.filter((a) => plan.manifest.apps.get(a)?.type === 'program');
  // With workers, the master replaces its workers on restart, reload and HUP, programs or not.
  const replacesItself = plan.nodeType.workers === 0 && programApps.length > 0;
  let replaceSelf: (what: string) => Promise<string> = () => Promise.reject(new Error('the node is still starting'));
  try {
    ensureReleaseCookie(launch.root);
    const cookie = resolveCookie({ relName: plan.info.release, nodeType: plan.nodeType.name, root: launch.root, vmArgsFile: env.NODEREL_VM_ARGS || undefined, env });
    // Apps never see <NAME>_COOKIE (nor their children): a USR2 successor gets it (successor.ts).
    takeCookieFromEnv(plan.info.release, env);
    // libuv unlinks a Unix socket's path when its server closes, so two masters cannot share the
    // name: a master started by USR2 listens on a name of its own and renames it to `ctl` once
    // the old master has closed its server ('ctl-free').
    const ctlPath = join(runDir, 'ctl');
    const ownPath = reexec ? join(runDir, `ctl.${process.pid}`) : ctlPath;
    // The TCP control port, when NODEREL_CONTROL_PORT asks for one: like the socket
    // path, it passes to a USR2 successor once this node lets it go ('ctl-free').
    const tcpAddress = launch.controlPort === undefined ? undefined : parseHostPort(launch.controlPort, 'NODEREL_CONTROL_PORT');
    // its certificate and key, read and checked now: a bad pair fails the start, not the first client
    const tcpTls = tcpAddress === undefined ? undefined : await loadControlTls(launch.controlTls);
    const handOver = async (): Promise<void> => {
      handedOver = true;
      await server?.close({ keepFile: true });
      await tcpServer?.close();
      tcpServer = undefined;
      handle?.completeHandover?.();
      single?.completeHandover();
    };
    const service: ControlService = {
      cookie: cookie.cookie,
      onAuthFailure: (info) => log.warn(info),
      requests: {
        // A degraded node (a spawn loop: workers down) answers, and says what is wrong.
        ping: () => {
          const degraded = handle?.degraded?.();
          return degraded === undefined ? 'pong' : { pong: true, degraded };
        },
        status: () => statusOf(handle, plan.info, plan.nodeType.apps, logStatus(consoleLog, control)),
        eval: async ([code, timeoutMs]) => {
          if (!handle?.ready) throw new Error('the node is still starting');
          // within the client's time limit (synchronous code included); a node with workers
          // evaluates in one of them: the apps live there
          const limit = Number(timeoutMs) > 0 ? Number(timeoutMs) : undefined;
          return (handle.evaluate ? await handle.evaluate(String(code), { timeoutMs: limit }) : await evaluate(String(code), handle, limit)).text;
        },
        stop: () => {
          const answer = { pid: process.pid, stage: handle?.ready ? handle.lifecycle.stage : 'starting', in_flight: handle?.lifecycle.inFlight ?? 0 };
          setImmediate(() => process.emit('SIGTERM', 'SIGTERM'));
          return answer;
        },
        restart: () => {
          if (!handle) throw new Error('the node is still starting');
          return replacesItself ? replaceSelf('restart') : handle.restartApps();
        },
        reload: () => {
          if (!handle) throw new Error('the node is still starting');
          return replacesItself ? replaceSelf('reload') : handle.reloadConfig();
        },
        reexec: async () => {
          const start = handle?.reexec ?? single?.reexec;
          if (!handle?.ready || !start) throw new Error('the node is still starting');
          const newPid = await start();
          setImmediate(() => void handOver()); // after this answer is on its way
          return { old_pid: process.pid, new_pid: newPid, single: plan.nodeType.workers === 0 };
        },
        reopen_logs: () => {
          if (!consoleLog) return `node ${plan.info.name} runs in the ${mode} and logs to its terminal; nothing to reopen`;
          consoleLog.reopen();
          return `reopened ${consoleLog.file}`;
        },
      },
      streams: {
        attach: (socket, args) => {
          if (!consoleLog) {
            socket.end(`node ${plan.info.name} was not started with start (it runs in the ${mode}); use remote_console\n`);
            return;
          }
          const unsubscribe = consoleLog.subscribe((chunk) => socket.write(chunk));
          void socketRepl(handle, socket, args, unsubscribe);
        },
        remote_console: (socket, args) => void socketRepl(handle, socket, args),
      },
    };
    const listen = (socketPath: string, takeover: boolean) => startControlServer({ ...service, takeover, socketPath });
    server = await listen(ownPath, reexec);
    const listenTcp = async (): Promise<void> => {
      if (!tcpAddress) return;
      tcpServer = await startControlTcpServer({ ...service, ...tcpAddress, ...(tcpTls ? { tls: tcpTls } : {}) });
      const how = tcpTls ? 'TLS, cookie-authenticated' : 'cookie-authenticated, not encrypted: private networks only';
      log.info(`control port listening on ${tcpServer.host}:${tcpServer.port} (${how})`);
    };
    // Taking the port over from the other node (USR2 or a rollback): a failure is logged, the
    // node runs on with its control socket.
    const takeTcp = (): void => void listenTcp().catch((err: unknown) => log.error(err instanceof Error ? err.message : String(err)));
    if (reexec) {
      process.on('message', (msg: { t?: string }) => {
        if (msg.t !== 'ctl-free') return;
        renameSync(ownPath, ctlPath);
        renamedCtl = statSync(ctlPath).ino;
        log.info('took over the control socket from the old process');
        takeTcp();
      });
    } else {
      await listenTcp(); // a port in use fails the start, with the address
    }
    // The new master or node left after it was ready (a rollback): the control socket path is ours again.
    const successorGone = (): void => {
      if (!handedOver) return;
      handedOver = false;
      void listen(ctlPath, true).then(
        (s2) => {
          server = s2;
          log.info('the new master or node is gone: this one answers on the control socket again');
          takeTcp();
        },
        (err: unknown) => log.error(`cannot listen on ${ctlPath} again: ${err instanceof Error ? err.message : String(err)}`),
      );
    };
    // A single-process node holds its apps' listening sockets, for a USR2 successor.
    single =
      plan.nodeType.workers === 0
        ? holdListeningSockets({
            successorOfOld: reexec,
            pidFile,
            launcher: releasePath(launch.root, launcherFile(plan.manifest.name)),
            nodeType: plan.nodeType.name,
            nodeName: plan.info.name,
            log,
            onSuccessorGone: successorGone,
          })
        : undefined;
    /**
     * restart, reload and HUP of a single-process node running a program app: a program cannot
     * be unloaded from its process, so the node is replaced the way USR2 replaces it (a new node
     * of this same version on the same sockets; this one drains once it is ready).
     */
    replaceSelf = async (what: string): Promise<string> => {
      if (!handle?.ready || !single) throw new Error('the node is still starting; try again once it is ready');
      if (mode !== 'daemon') {
        throw new Error(
          `${what}: node ${plan.info.name} runs a program app (${programApps.join(', ')}), which cannot restart inside its process, and a node in the ${mode} cannot hand its process over; `
          + 'start it with `start` (then restart replaces the node on the same sockets), give its node type workers: 1 (the master replaces the worker), or restart the service',
        );
      }
      const launcher = releasePath(launch.root, versionedLauncher(plan.manifest.name, plan.manifest.version));
      log.info(`${what}: replacing this node (program apps cannot restart in their process)`);
      const newPid = await single.reexec(existsSync(launcher) ? launcher : undefined);
      setImmediate(() => {
        void handOver().then(() => {
          log.info(`${what}: the new node (pid ${newPid}) is ready and serving; this one finishes its work in flight and exits`);
          handle?.advance('draining');
        });
      });
      return `${what === 'reload' ? 'reloaded' : 'restarted'} ${plan.nodeType.apps.join(', ')}: node ${plan.info.name} now runs as pid ${newPid} (it replaced pid ${process.pid}, which finishes its work in flight and exits)`;
    };
    writePidFile(pidFile);
    // A program's own TERM handler may call process.exit as the node stops it: the pid file
    // (only while it names this process) goes with the process all the same.
    process.on('exit', () => {
      removePidFile(pidFile);
      removePidFile(`${pidFile}.oldbin`);
    });
    writeFileSync(join(runDir, 'node.vsn'), `${plan.manifest.version}\n`);
    // A reopen that fails (a full disk, a removed directory) keeps the old file: never fatal.
    const reopenLogs = (why = ''): void => {
      try {
        consoleLog?.reopen();
      } catch (err) {
        log.error(`cannot reopen ${consoleLog?.file}${why}: ${err instanceof Error ? err.message : String(err)}; still writing to the old file`);
        return;
      }
      log.info(consoleLog ? `reopened ${consoleLog.file}${why}` : 'no log file to reopen (not a daemon)');
    };
    if (consoleLog) process.on('SIGUSR1', () => reopenLogs(' (USR1)'));
    // ALRM toggles trace-level logging (Adhearsion); a master passes it on to its workers.
    let levelBeforeTrace = control.level;
    process.on('SIGALRM', () => {
      if (control.level === 'trace') control.level = levelBeforeTrace;
      else {
        levelBeforeTrace = control.level;
        control.level = 'trace';
      }
      log.info(`ALRM: log level ${control.level}`);
    });
    if (plan.nodeType.workers === 0) {
      singleProcessSignals(log, () => handle, () => reopenLogs(), replacesItself ? () => replaceSelf('HUP').catch((err: unknown) => log.error(`HUP: ${err instanceof Error ? err.message : String(err)}`)) : undefined, () => {
        log.info('received SIGUSR2');
        void single?.reexec().then(() => handOver(), () => {});
      });
    }
    // A master's modules (child_process and more) are loaded only by node types with workers.
    const run =
      plan.nodeType.workers > 0
        ? async (p: typeof plan, c: LogControl, o: MasterOptions) => (await import('./master.js')).runMaster(p, c, o)
        : runForeground;
    return await run(plan, control, {
      daemonized: mode === 'daemon',
      pidFile,
      onSuccessor: () => void handOver(),
      onSuccessorGone: successorGone,
      reopenLogs,
      onStarting: (h) => (handle = h),
      onReady: (h) => {
        reportStart(env, 'ready', String(process.pid));
        // A node started by USR2 tells the old one (a master does it in master.ts).
        if (reexec && plan.nodeType.workers === 0) process.send?.({ t: 'ready' });
        if (mode === 'console') {
          void import('./repl.js').then(({ startNodeRepl }) => startNodeRepl(h, {
            input: process.stdin,
            output: process.stdout,
            terminal: process.stdin.isTTY,
            onExit: () => {
              log.info('console closed; stopping the node gracefully');
              h.stop();
            },
          }));
        }
      },
      onStartFailed: (message) => reportStart(env, 'failed', message),
    });
  } catch (err) {
    reportStart(env, 'failed', err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    removePidFile(pidFile);
    removePidFile(`${pidFile}.oldbin`);
    // After a USR2 hand-over the socket path belongs to the new master.
    await server?.close({ keepFile: handedOver });
    await tcpServer?.close();
    if (renamedCtl !== undefined && statSync(join(runDir, 'ctl'), { throwIfNoEntry: false })?.ino === renamedCtl) {
      rmSync(join(runDir, 'ctl'), { force: true });
    }
    lock.lock.release();
  }
}
