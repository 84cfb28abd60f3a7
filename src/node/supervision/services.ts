/**
 * A node's services around its apps, in every mode (`foreground`, `console`, `daemon`): the
 * node lock (one node per node name), the cookie, the control socket every control command goes
 * through, the pid file, and for a daemon its console.log and the start status the launcher's
 * `start` waits on. Torn down in reverse when the node stops. One object, `NodeServices`, holds
 * their state; their signals (USR1, ALRM, and a single-process node's HUP, USR2, WINCH, TTIN,
 * TTOU) are registered with signals.ts.
 */
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COOKIE, launcher as launcherFile, releasePath, versionedLauncher } from '../../contract/layout.js';
import type { Duplex } from 'node:stream';
import { captureStdio, ConsoleLog, consoleLogSink, logSettings } from '../logs/console-log.js';
import { parseHostPort, startControlServer, startControlTcpServer, type ControlServer, type ControlService, type ControlTcpServer } from '../control/control.js';
import { resolveCookie, takeCookieFromEnv } from '../control/cookie.js';
import { BootError } from '../errors.js';
import type { LogControl, Logger } from '../logs/log.js';
import { createLogger } from '../logs/log.js';
import { evaluate } from '../control/evaluate.js';
import { randomBytes } from '../control/digest.js';
import { acquireNodeLock, type LockResult, type NodeLock } from './node-lock.js';
import { planNode, runForeground } from './node.js';
import type { MasterOptions, NodeHandle, NodePlan } from './node-types.js';
import { removePidFile, writePidFile } from './pid-file.js';
import { readLaunchEnv, type LaunchEnv } from '../release/launch-env.js';
import type { TlsServerConfig } from '../control/control-tls.js';
import { signalRouter, stopAsTerm, type SignalRouter } from './signals.js';
import { holdListeningSockets, type SingleProcessHandover } from './single.js';

export type NodeMode = 'foreground' | 'console' | 'daemon';

/**
 * The status file the launcher's `start` polls (`NODEREL_START_STATUS`): `ready <pid>`,
 * `running <pid>` or `failed <why>`, written once; then the variable leaves the environment, so
 * no worker or successor inherits it.
 */
class StartStatus {
  #file: string | undefined;
  readonly #env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv, file: string | undefined) {
    this.#env = env;
    this.#file = file;
  }

  /** Nothing reported yet, and the launcher waits for a report. */
  get pending(): boolean {
    return this.#file !== undefined;
  }

  report(verdict: 'ready' | 'running' | 'failed', detail: string): void {
    const file = this.#file;
    if (!file) return;
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, `${verdict} ${detail.replace(/\s*\n\s*/g, ' ')}\n`);
    renameSync(tmp, file);
    this.#file = undefined;
    delete this.#env.NODEREL_START_STATUS; // reported once
  }
}

/**
 * `releases/COOKIE` for a release unpacked from a tarball (which never carries the cookie); for
 * a read-only release (an image, whose digest must not depend on a random cookie), in
 * `$RELEASE_TMP/COOKIE` instead, which the cookie resolution reads last.
 */
function ensureReleaseCookie(root: string, tmpDir: string | undefined): void {
  const file = releasePath(root, COOKIE);
  if (existsSync(file)) return;
  const cookie = randomBytes(32).toString('base64url');
  try {
    writeFileSync(file, cookie, { mode: 0o400, flag: 'wx' });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') return; // EEXIST: another node just wrote it
  }
  if (tmpDir === undefined) return;
  try {
    writeFileSync(join(tmpDir, 'COOKIE'), cookie, { mode: 0o400, flag: 'wx' });
  } catch {
    // there already, or not writable: resolution says what it finds
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
  const { loadTlsServerConfig } = await import('../control/control-tls.js');
  return loadTlsServerConfig(files.certFile, files.keyFile);
}

/** A REPL inside the node on a control socket (attach, remote_console). */
async function socketRepl(handle: NodeHandle | undefined, socket: Duplex, args: unknown[], onClose?: () => void): Promise<void> {
  if (!handle?.ready) {
    socket.end('the node is still starting; try again in a moment\n');
    return;
  }
  const { startNodeRepl } = await import('../control/repl.js'); // node:repl is loaded only when used
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

/** A daemon's console.log: JS output goes through the rotating log; the launcher pointed fds 1 and 2 at the same file. */
function openConsoleLog(launch: LaunchEnv, env: NodeJS.ProcessEnv, control: LogControl): ConsoleLog {
  const dir = launch.nodeLogDir ?? join(launch.logDir, launch.nodeName ?? 'node');
  const consoleLog = new ConsoleLog({ file: join(dir, 'console.log'), ...logSettings(env) });
  captureStdio(consoleLog);
  // The node's own lines go straight to the log: fds 1 and 2 still point at the file the
  // launcher opened, which is the old one after a rename and reopen.
  control.sink = consoleLogSink(consoleLog);
  return consoleLog;
}

/** Runs the node with its services; resolves with the exit code. */
export async function runNode(mode: NodeMode, control: LogControl, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const launch = readLaunchEnv(env);
  const status = new StartStatus(env, launch.startStatusFile);
  const consoleLog = mode === 'daemon' ? openConsoleLog(launch, env, control) : undefined;
  // Whatever ends the process before it reported (an app calling process.exit while booting, even
  // with code 0), `start` hears of it at once, with the code.
  process.on('exit', (code) => {
    if (status.pending) status.report('failed', `the node exited with code ${code} before it was ready (an app called process.exit or crashed while starting)`);
  });
  let plan: NodePlan;
  try {
    plan = planNode(launch, env);
  } catch (err) {
    if (err instanceof BootError) status.report('failed', err.message);
    throw err;
  }
  return new NodeServices({ mode, control, env, launch, plan, status, consoleLog }).run();
}

interface NodeServicesSetup {
  readonly mode: NodeMode;
  readonly control: LogControl;
  readonly env: NodeJS.ProcessEnv;
  readonly launch: LaunchEnv;
  readonly plan: NodePlan;
  readonly status: StartStatus;
  readonly consoleLog: ConsoleLog | undefined;
}

/**
 * The services of one node and their state in one place: the lock, the control socket and TCP
 * port (and their hand-over to a USR2 successor), the pid file, the signals of the services and
 * of a single-process node (signals.ts), and the handle of the running node once it exists.
 */
class NodeServices {
  readonly #s: NodeServicesSetup;
  readonly #log: Logger;
  readonly #runDir: string;
  readonly #pidFile: string;
  readonly #ctlPath: string;
  /** Started by USR2 (or a replace) of an old node, which still holds the lock and the control socket. */
  readonly #reexec: boolean;
  readonly #programApps: readonly string[];
  /** restart, reload and HUP replace the process (a single-process node running a program app). */
  readonly #replacesItself: boolean;
  /**
   * restart replaces the process too: a single-process node serving on sockets systemd passed
   * (socket activation), which an app closing its server would close for good.
   */
  readonly #restartReplaces: boolean;
  #handle: NodeHandle | undefined;
  #server: ControlServer | undefined;
  #tcpServer: ControlTcpServer | undefined;
  #tcpAddress: { host: string; port: number } | undefined;
  #tcpTls: TlsServerConfig | undefined;
  #service: ControlService | undefined;
  /** The control socket path belongs to a successor now. */
  #handedOver = false;
  /** The inode of the `ctl` this node renamed into place (a successor's), to remove only that one. */
  #renamedCtl: number | undefined;
  #single: SingleProcessHandover | undefined;
  #levelBeforeTrace: LogControl['level'];

  constructor(setup: NodeServicesSetup) {
    this.#s = setup;
    const { plan, launch, control } = setup;
    this.#log = createLogger(plan.info.name, control);
    this.#runDir = launch.runDir ?? join(launch.releaseTmp, plan.info.name);
    this.#pidFile = join(this.#runDir, 'node.pid');
    this.#ctlPath = join(this.#runDir, 'ctl');
    this.#reexec = Boolean(launch.reexec && process.send);
    this.#programApps = plan.nodeType.apps.filter((a) => plan.manifest.apps.get(a)?.type === 'program');
    // With workers, the master replaces its workers on restart, reload and HUP, programs or not.
    this.#replacesItself = plan.nodeType.workers === 0 && this.#programApps.length > 0;
    this.#restartReplaces = this.#replacesItself || (plan.nodeType.workers === 0 && launch.listenFds > 0);
    this.#levelBeforeTrace = control.level;
  }

  async run(): Promise<number> {
    const { plan, status } = this.#s;
    mkdirSync(this.#runDir, { recursive: true, mode: 0o700 });
    // A master started by USR2 runs beside the old one, which holds the lock: it takes the lock
    // over when the old master is gone (the old one starts at most one successor at a time).
    const lock: LockResult = this.#reexec ? { acquired: true as const, lock: lockLater(this.#runDir) } : await acquireNodeLock(this.#runDir);
    if (!lock.acquired) {
      const holder = lock.heldBy === undefined ? '' : ` (pid ${lock.heldBy})`;
      status.report('running', String(lock.heldBy ?? '?'));
      process.stderr.write(`Node ${plan.info.name} is already running${holder}\n`);
      return 1;
    }
    try {
      await this.#start();
      return await this.#runNodeType();
    } catch (err) {
      status.report('failed', err instanceof Error ? err.message : String(err));
      throw err;
    } finally {
      await this.#teardown();
      lock.lock.release();
    }
  }

  /** Everything before the apps: cookie, control socket and port, listening sockets, pid file, signals. */
  async #start(): Promise<void> {
    const { plan, launch, env } = this.#s;
    ensureReleaseCookie(launch.root, env.RELEASE_TMP);
    const cookie = resolveCookie({ relName: plan.info.release, nodeType: plan.nodeType.name, root: launch.root, vmArgsFile: launch.vmArgsFile, env });
    // Apps never see <NAME>_COOKIE (nor their children): a USR2 successor gets it (successor.ts).
    takeCookieFromEnv(plan.info.release, env);
    // The TCP control port, when NODEREL_CONTROL_PORT asks for one: like the socket
    // path, it passes to a USR2 successor once this node lets it go ('ctl-free').
    this.#tcpAddress = launch.controlPort === undefined ? undefined : parseHostPort(launch.controlPort, 'NODEREL_CONTROL_PORT');
    // its certificate and key, read and checked now: a bad pair fails the start, not the first client
    this.#tcpTls = this.#tcpAddress === undefined ? undefined : await loadControlTls(launch.controlTls);
    this.#service = this.#controlService(cookie.cookie);
    await this.#listenControl();
    // A single-process node holds its apps' listening sockets, for a USR2 successor.
    this.#single =
      plan.nodeType.workers === 0
        ? holdListeningSockets({
            successorOfOld: this.#reexec,
            listenFds: launch.listenFds,
            pidFile: this.#pidFile,
            launcher: releasePath(launch.root, launcherFile(plan.manifest.name)),
            nodeType: plan.nodeType.name,
            nodeName: plan.info.name,
            log: this.#log,
            onSuccessorGone: () => this.#successorGone(),
          })
        : undefined;
    writePidFile(this.#pidFile);
    // A program's own TERM handler may call process.exit as the node stops it: the pid file
    // (only while it names this process) goes with the process all the same.
    process.on('exit', () => {
      removePidFile(this.#pidFile);
      removePidFile(`${this.#pidFile}.oldbin`);
    });
    writeFileSync(join(this.#runDir, 'node.vsn'), `${plan.manifest.version}\n`);
    this.#installSignals(signalRouter());
  }

  /** What the control socket (and port) answers. */
  #controlService(cookie: string): ControlService {
    const { plan, mode, control } = this.#s;
    const log = this.#log;
    const starting = (): never => {
      throw new Error('the node is still starting');
    };
    return {
      cookie,
      onAuthFailure: (info) => log.warn(info),
      requests: {
        // A degraded node (a spawn loop: workers down) answers, and says what is wrong.
        ping: () => {
          const degraded = this.#handle?.degraded?.();
          return degraded === undefined ? 'pong' : { pong: true, degraded };
        },
        status: () => statusOf(this.#handle, plan.info, plan.nodeType.apps, logStatus(this.#s.consoleLog, control)),
        eval: async ([code, timeoutMs]) => {
          const handle = this.#handle;
          if (!handle?.ready) return starting();
          // within the client's time limit (synchronous code included); a node with workers
          // evaluates in one of them: the apps live there
          const limit = Number(timeoutMs) > 0 ? Number(timeoutMs) : undefined;
          return (handle.evaluate ? await handle.evaluate(String(code), { timeoutMs: limit }) : await evaluate(String(code), handle, limit)).text;
        },
        stop: () => {
          const handle = this.#handle;
          const answer = { pid: process.pid, stage: handle?.ready ? handle.lifecycle.stage : 'starting', in_flight: handle?.lifecycle.inFlight ?? 0 };
          setImmediate(stopAsTerm);
          return answer;
        },
        restart: () => (!this.#handle ? starting() : this.#restartReplaces ? this.#replaceSelf('restart') : this.#handle.restartApps()),
        reload: () => (!this.#handle ? starting() : this.#replacesItself ? this.#replaceSelf('reload') : this.#handle.reloadConfig()),
        reexec: async () => {
          const start = this.#handle?.reexec ?? this.#single?.reexec;
          if (!this.#handle?.ready || !start) return starting();
          const newPid = await start();
          setImmediate(() => void this.#handOver()); // after this answer is on its way
          return { old_pid: process.pid, new_pid: newPid, single: plan.nodeType.workers === 0 };
        },
        reopen_logs: () => {
          const consoleLog = this.#s.consoleLog;
          if (!consoleLog) return `node ${plan.info.name} runs in the ${mode} and logs to its terminal; nothing to reopen`;
          consoleLog.reopen();
          return `reopened ${consoleLog.file}`;
        },
      },
      streams: {
        attach: (socket, args) => {
          const consoleLog = this.#s.consoleLog;
          if (!consoleLog) {
            socket.end(`node ${plan.info.name} was not started with start (it runs in the ${mode}); use remote_console\n`);
            return;
          }
          const unsubscribe = consoleLog.subscribe((chunk) => socket.write(chunk));
          void socketRepl(this.#handle, socket, args, unsubscribe);
        },
        remote_console: (socket, args) => void socketRepl(this.#handle, socket, args),
      },
    };
  }

  /**
   * libuv unlinks a Unix socket's path when its server closes, so two masters cannot share the
   * name: a master started by USR2 listens on a name of its own and renames it to `ctl` once
   * the old master has closed its server ('ctl-free').
   */
  async #listenControl(): Promise<void> {
    const ownPath = this.#reexec ? join(this.#runDir, `ctl.${process.pid}`) : this.#ctlPath;
    this.#server = await startControlServer({ ...this.#service!, takeover: this.#reexec, socketPath: ownPath });
    if (!this.#reexec) {
      await this.#listenTcp(); // a port in use fails the start, with the address
      return;
    }
    let taken = false;
    const take = (how: string): void => {
      if (taken) return;
      taken = true;
      renameSync(ownPath, this.#ctlPath);
      this.#renamedCtl = statSync(this.#ctlPath).ino;
      this.#log.info(how);
      this.#takeTcp();
    };
    process.on('message', (msg: { t?: string }) => {
      if (msg.t === 'ctl-free') take('took over the control socket from the old process');
    });
    // The old process gone before it let go (QUIT before this one was ready): nobody else will.
    process.once('disconnect', () => take('the old process went away before the hand-over finished; took over the control socket'));
  }

  async #listenTcp(): Promise<void> {
    const address = this.#tcpAddress;
    if (!address) return;
    const tls = this.#tcpTls;
    this.#tcpServer = await startControlTcpServer({ ...this.#service!, ...address, ...(tls ? { tls } : {}) });
    const how = tls ? 'TLS, cookie-authenticated' : 'cookie-authenticated, not encrypted: private networks only';
    this.#log.info(`control port listening on ${this.#tcpServer.host}:${this.#tcpServer.port} (${how})`);
  }

  /** Taking the port over from the other node (USR2 or a rollback): a failure is logged, the node runs on with its control socket. */
  #takeTcp(): void {
    void this.#listenTcp().catch((err: unknown) => this.#log.error(err instanceof Error ? err.message : String(err)));
  }

  /** The successor is ready: let go of the control socket path and port, and let it take them. */
  async #handOver(): Promise<void> {
    this.#handedOver = true;
    await this.#server?.close({ keepFile: true });
    await this.#tcpServer?.close();
    this.#tcpServer = undefined;
    this.#handle?.completeHandover?.();
    this.#single?.completeHandover();
  }

  /** The new master or node left after it was ready (a rollback): the control socket path is ours again. */
  #successorGone(): void {
    if (!this.#handedOver) return;
    this.#handedOver = false;
    void startControlServer({ ...this.#service!, takeover: true, socketPath: this.#ctlPath }).then(
      (s2) => {
        this.#server = s2;
        this.#log.info('the new master or node is gone: this one answers on the control socket again');
        this.#takeTcp();
      },
      (err: unknown) => this.#log.error(`cannot listen on ${this.#ctlPath} again: ${err instanceof Error ? err.message : String(err)}`),
    );
  }

  /**
   * restart, reload and HUP of a single-process node running a program app: a program cannot
   * be unloaded from its process, so the node is replaced the way USR2 replaces it (a new node
   * of this same version on the same sockets; this one drains once it is ready).
   */
  async #replaceSelf(what: string): Promise<string> {
    const { plan, launch, mode } = this.#s;
    const single = this.#single;
    if (!this.#handle?.ready || !single) throw new Error('the node is still starting; try again once it is ready');
    const why = this.#replacesItself
      ? `runs a program app (${this.#programApps.join(', ')}), which cannot restart inside its process`
      : 'serves on sockets systemd passed (socket activation), which its apps would close for good by restarting inside its process';
    if (mode !== 'daemon') {
      throw new Error(
        `${what}: node ${plan.info.name} ${why}, and a node in the ${mode} cannot hand its process over; `
        + 'start it with `start` (then restart replaces the node on the same sockets), give its node type workers: 1 (the master replaces the worker), or restart the service',
      );
    }
    const launcher = releasePath(launch.root, versionedLauncher(plan.manifest.name, plan.manifest.version));
    this.#log.info(`${what}: replacing this node (${this.#replacesItself ? 'program apps cannot restart in their process' : 'its sockets are systemd\'s'})`);
    const newPid = await single.reexec(existsSync(launcher) ? launcher : undefined);
    setImmediate(() => {
      void this.#handOver().then(() => {
        this.#log.info(`${what}: the new node (pid ${newPid}) is ready and serving; this one finishes its work in flight and exits`);
        this.#handle?.advance('draining');
      });
    });
    return `${what === 'reload' ? 'reloaded' : 'restarted'} ${plan.nodeType.apps.join(', ')}: node ${plan.info.name} now runs as pid ${newPid} (it replaced pid ${process.pid}, which finishes its work in flight and exits)`;
  }

  /** A reopen that fails (a full disk, a removed directory) keeps the old file: never fatal. */
  #reopenLogs(why = ''): void {
    const consoleLog = this.#s.consoleLog;
    try {
      consoleLog?.reopen();
    } catch (err) {
      this.#log.error(`cannot reopen ${consoleLog?.file}${why}: ${err instanceof Error ? err.message : String(err)}; still writing to the old file`);
      return;
    }
    this.#log.info(consoleLog ? `reopened ${consoleLog.file}${why}` : 'no log file to reopen (not a daemon)');
  }

  /** ALRM toggles trace-level logging (Adhearsion); a master passes it on to its workers (signals.ts runs that after this). */
  #toggleTrace(): void {
    const control = this.#s.control;
    if (control.level === 'trace') control.level = this.#levelBeforeTrace;
    else {
      this.#levelBeforeTrace = control.level;
      control.level = 'trace';
    }
    this.#log.info(`ALRM: log level ${control.level}`);
  }

  /**
   * The services' signals, and a single-process node's answers to the unicorn signals: HUP
   * reloads the config (or reopens the logs with NODEREL_HUP=reopen_logs; a node running a
   * program app is replaced instead), USR2 starts a new node on the same sockets (single.ts);
   * the ones that only make sense with workers are logged and ignored rather than left to their
   * default action (TT* would stop the node).
   */
  #installSignals(router: SignalRouter): void {
    const log = this.#log;
    if (this.#s.consoleLog) router.on('SIGUSR1', 'services', 'reopen console.log', () => this.#reopenLogs(' (USR1)'));
    router.on('SIGALRM', 'services', 'toggle trace logging', () => this.#toggleTrace());
    if (this.#s.plan.nodeType.workers > 0) return; // the master's own: master.ts
    router.on('SIGHUP', 'single', 'reload', () => {
      log.info('received SIGHUP');
      if (this.#s.launch.hupReopensLogs) return this.#reopenLogs();
      if (this.#replacesItself) return void this.#replaceSelf('HUP').catch((err: unknown) => log.error(`HUP: ${err instanceof Error ? err.message : String(err)}`));
      void this.#handle
        ?.reloadConfig()
        .catch((err: unknown) => log.error(`HUP: reload failed: ${err instanceof Error ? err.message : String(err)}`));
    });
    router.on('SIGUSR2', 'single', 're-exec', () => {
      log.info('received SIGUSR2');
      void this.#single?.reexec().then(() => this.#handOver(), () => {});
    });
    for (const signal of ['SIGWINCH', 'SIGTTIN', 'SIGTTOU'] as const) {
      router.on(signal, 'single', 'ignored', () => log.info(`${signal} ignored: this node type runs in a single process (workers: 0)`));
    }
  }

  /** Runs the node type's apps: in this process (node.ts), or in workers under a master (master.ts). */
  async #runNodeType(): Promise<number> {
    const { plan, control, mode, status } = this.#s;
    // A master's modules (child_process and more) are loaded only by node types with workers.
    const run =
      plan.nodeType.workers > 0
        ? async (p: NodePlan, c: LogControl, o: MasterOptions) => (await import('./master.js')).runMaster(p, c, o)
        : runForeground;
    return await run(plan, control, {
      daemonized: mode === 'daemon',
      pidFile: this.#pidFile,
      onSuccessor: () => void this.#handOver(),
      onSuccessorGone: () => this.#successorGone(),
      reopenLogs: () => this.#reopenLogs(),
      onStarting: (h) => (this.#handle = h),
      onReady: (h) => this.#onReady(h),
      onStartFailed: (message) => status.report('failed', message),
    });
  }

  #onReady(h: NodeHandle): void {
    const { plan, mode, status } = this.#s;
    status.report('ready', String(process.pid));
    // A node started by USR2 tells the old one (a master does it in master.ts).
    if (this.#reexec && plan.nodeType.workers === 0 && process.connected) process.send?.({ t: 'ready' }, undefined, {}, () => {});
    if (mode !== 'console') return;
    void import('../control/repl.js').then(({ startNodeRepl }) => startNodeRepl(h, {
      input: process.stdin,
      output: process.stdout,
      terminal: process.stdin.isTTY,
      onExit: () => {
        this.#log.info('console closed; stopping the node gracefully');
        h.stop();
      },
    }));
  }

  async #teardown(): Promise<void> {
    removePidFile(this.#pidFile);
    removePidFile(`${this.#pidFile}.oldbin`);
    // After a USR2 hand-over the socket path belongs to the new master.
    await this.#server?.close({ keepFile: this.#handedOver });
    await this.#tcpServer?.close();
    if (this.#renamedCtl !== undefined && statSync(this.#ctlPath, { throwIfNoEntry: false })?.ino === this.#renamedCtl) {
      rmSync(this.#ctlPath, { force: true });
    }
  }
}
