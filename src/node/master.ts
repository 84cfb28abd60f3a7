/**
 * The master of a node type with `workers: N` (unicorn's model). It runs no app
 * itself: it binds the listening sockets the workers ask for (once per address; the workers
 * accept on them directly), keeps N workers alive (respawn with exponential backoff; a worker
 * dying during boot again and again trips the spawn-loop guard), and turns signals into work:
 *
 *   INT/TERM 1-3, QUIT   the stage goes to every worker; the master exits once they all have
 *   INT/TERM 4           workers killed, exit 1 at once
 *   HUP                  reload the config and replace the workers gracefully: each new worker
 *                        must be ready before the old one is told to stop
 *                        (NODEREL_HUP=reopen_logs makes HUP reopen the logs instead)
 *   WINCH                daemonized only: stop the workers gracefully, keep the master (and the
 *                        sockets); HUP brings them back
 *   TTIN / TTOU          one worker more / fewer; while the spawn-loop guard holds worker slots,
 *                        TTIN first brings those back (the pool to its configured size)
 * A listening socket that no worker serves any more (every worker on it died) is closed, so
 * clients and load balancers get a refusal instead of a hang; the master binds it again when a
 * worker asks for it. While the guard holds slots, status and ping report the node degraded.
 *   USR2                 re-exec: a new master (bin/<name>, so possibly a new release version)
 *                        gets this master's listening sockets over IPC and starts its own
 *                        workers on them; the pid file becomes <pid file>.oldbin; both serve
 *                        until the operator sends WINCH/QUIT to the old one. A new master that
 *                        fails to become ready exits, and the pid file comes back.
 * Worker output is read line by line and written through the master's own stdout, so a daemon
 * has one writer to its console.log.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { type Server } from 'node:net';
import { join } from 'node:path';
import { launcher as launcherFile, releasePath } from '../contract/layout.js';
import { DEFAULT_EVAL_TIMEOUT_MS } from './evaluate.js';
import { scheduleBootGc } from './heap.js';
import { Lifecycle, type Stage } from './lifecycle.js';
import { createLogger, describeError, type LogControl } from './log.js';
import { planNode, type ForegroundOptions, type NodeHandle, type NodePlan } from './node.js';
import { installSignalHandlers, type ShutdownRequest } from './signals.js';
import type { FromWorker, ToWorker } from './worker.js';
import { adoptHandles, bindListener, listenKey, type ListenAddress, type RawHandle } from './listeners.js';
import { successorControl } from './successor.js';

/** A worker's own entry, beside boot.js: a bundle of only what a worker runs (worker-main.ts). */
const WORKER_MAIN = join(import.meta.dirname, 'worker-main.js');
/** Boot deaths in a row that trip the spawn-loop guard for a worker slot. */
export const SPAWN_LOOP_LIMIT = 5;
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 10_000;
const STATUS_TIMEOUT_MS = 2_000;

interface WorkerProc {
  readonly index: number;
  readonly child: ChildProcess;
  state: 'booting' | 'ready' | 'retiring';
  lastFailure?: string;
  /** Resolved when this worker is ready (true) or died before that (false). */
  readonly booted: Promise<boolean>;
  settleBoot(ok: boolean): void;
}

export interface WorkerStatus {
  index: number;
  pid: number;
  state: string;
  stage?: string;
  in_flight?: number;
  rss?: number;
  uptime_s?: number;
}


export interface MasterOptions extends ForegroundOptions {
  /** The node runs as a daemon (WINCH is honoured only then, as in unicorn). */
  daemonized: boolean;
  /** The node's pid file: USR2 renames it to `<pid file>.oldbin` while a new master starts. */
  pidFile: string;
  /** Called once a new master started by USR2 (signal) is ready; then call completeHandover. */
  onSuccessor?(pid: number): void;
  /** Called when a ready successor exits while this master still runs (a rollback). */
  onSuccessorGone?(): void;
  /** Reopen the master's log (USR1, or HUP with NODEREL_HUP=reopen_logs). */
  reopenLogs?(): void;
}

/** Runs the master until its workers are gone; resolves with the exit code. */
export function runMaster(plan: NodePlan, control: LogControl, opts: MasterOptions): Promise<number> {
  const { info, nodeType } = plan;
  const log = createLogger(info.name, control);
  process.title = opts.processTitle ?? nodeType.processName;
  let resolveExit: (code: number) => void = () => {};
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));
  const keepAlive = setInterval(() => {}, 1 << 30);

  const lifecycle = new Lifecycle((err) => log.error(`a stage listener failed: ${describeError(err, true)}`));
  const workers = new Set<WorkerProc>();
  const listeners = new Map<string, RawHandle>();
  /** The workers that listen on each address (listenKey): a socket nobody serves is closed. */
  const servedBy = new Map<string, Set<WorkerProc>>();
  const failures = new Map<number, number>();
  const tripped = new Set<number>();
  const respawnTimers = new Map<number, NodeJS.Timeout>();
  let target = nodeType.workers;
  let ready = false;
  let stopping = false;
  let paused = false;
  let sysConfig = plan.sysConfig;
  let finished = false;

  const finish = (code: number): void => {
    if (finished) return;
    finished = true;
    clearInterval(keepAlive);
    for (const t of respawnTimers.values()) clearTimeout(t);
    for (const h of listeners.values()) h.close();
    uninstall();
    resolveExit(code);
  };

  const sendTo = (w: WorkerProc, msg: ToWorker, handle?: unknown): void => {
    if (!w.child.connected) return;
    try {
      w.child.send(msg, handle as Server | undefined);
    } catch (err) {
      log.warn(`could not reach worker ${w.index} (pid ${w.child.pid}): ${describeError(err)}`);
    }
  };

  const live = (): WorkerProc[] => [...workers].filter((w) => w.state !== 'retiring');

  /** The bound (not listening) socket for an address, created once and shared by every worker. */
  const listenerFor = async (address: ListenAddress): Promise<RawHandle> => {
    const key = listenKey(address);
    const existing = listeners.get(key);
    if (existing) return existing;
    const h = await bindListener(address);
    listeners.set(key, h);
    return h;
  };

  const pipeLines = (stream: NodeJS.ReadableStream | null, out: NodeJS.WritableStream): void => {
    if (!stream) return;
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const text = rest + chunk;
      const cut = text.lastIndexOf('\n') + 1;
      rest = text.slice(cut);
      if (cut > 0) out.write(text.slice(0, cut));
    });
    stream.on('end', () => {
      if (rest) out.write(`${rest}\n`);
    });
  };

  const spawnWorker = (index: number): WorkerProc => {
    const child = fork(WORKER_MAIN, [], {
      env: { ...process.env, NODEREL_WORKER_INDEX: String(index), NODEREL_LOG_LEVEL: control.level },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: process.execArgv,
    });
    let settleBoot: (ok: boolean) => void = () => {};
    const booted = new Promise<boolean>((resolve) => (settleBoot = resolve));
    const w: WorkerProc = { index, child, state: 'booting', booted, settleBoot };
    workers.add(w);
    pipeLines(child.stdout, process.stdout);
    pipeLines(child.stderr, process.stderr);
    child.on('message', (msg: FromWorker) => void onMessage(w, msg));
    // A send to a worker that is dying fails with EPIPE as an 'error' event: without a listener
    // it would take the master down (its exit is handled below).
    child.on('error', (err) => log.debug(`worker ${index} (pid ${child.pid}): ${describeError(err)}`));
    child.on('exit', (code, signal) => onExit(w, code, signal));
    log.debug(`worker ${index} spawned (pid ${child.pid})`);
    return w;
  };

  const statusWaiters = new Map<number, (s: WorkerStatus) => void>();
  let nextStatusId = 1;
  const evalWaiters = new Map<number, (reply: Extract<FromWorker, { t: 'eval' }>) => void>();

  const onMessage = async (w: WorkerProc, msg: FromWorker): Promise<void> => {
    switch (msg.t) {
      case 'listen':
        try {
          const address = { host: msg.host, port: msg.port, ipv6Only: msg.ipv6Only === true };
          const h = await listenerFor(address);
          const key = listenKey(address);
          if (!servedBy.has(key)) servedBy.set(key, new Set());
          servedBy.get(key)!.add(w);
          sendTo(w, { t: 'listen-ok', id: msg.id }, h);
        } catch (err) {
          sendTo(w, { t: 'listen-err', id: msg.id, message: (err as Error).message, code: (err as NodeJS.ErrnoException).code });
        }
        break;
      case 'ready':
        w.state = w.state === 'retiring' ? 'retiring' : 'ready';
        failures.set(w.index, 0);
        log.info(`worker ${w.index} ready (pid ${w.child.pid})`);
        w.settleBoot(true);
        break;
      case 'failed':
        w.lastFailure = msg.message;
        break;
      case 'eval':
        evalWaiters.get(msg.id)?.(msg);
        break;
      case 'status':
        statusWaiters.get(msg.id)?.({ index: w.index, pid: w.child.pid ?? 0, state: w.state, stage: msg.stage, in_flight: msg.in_flight, rss: msg.rss, uptime_s: msg.uptime_s });
        break;
      default:
        break;
    }
  };

  /**
   * Closes the listening sockets `w` was the last worker to serve: the kernel would otherwise
   * queue connections on them that nobody accepts. Kept while the master is stopping (it closes
   * them all), after WINCH (the operator keeps the sockets on purpose) and after a hand-over to
   * a new master (they are shared with it).
   */
  const releaseListeners = (w: WorkerProc): void => {
    for (const [key, set] of servedBy) {
      if (!set.delete(w) || set.size > 0) continue;
      servedBy.delete(key);
      if (stopping || paused || siblingMaster() !== undefined) continue;
      const h = listeners.get(key);
      if (!h) continue;
      listeners.delete(key);
      h.close();
      log.warn(`no worker serves ${key} any more: closed its listening socket (connections are refused) until a worker listens on it again`);
    }
  };

  const onExit = (w: WorkerProc, code: number | null, signal: NodeJS.Signals | null): void => {
    workers.delete(w);
    releaseListeners(w);
    const how = signal ? `killed by ${signal}` : `exit code ${code}`;
    const beforeReady = w.state === 'booting';
    w.settleBoot(false);
    if (stopping) {
      log.info(`worker ${w.index} stopped (${how})`);
      if (workers.size === 0) {
        log.info(`node ${info.name} stopped`);
        finish(0);
      }
      return;
    }
    if (w.state === 'retiring') {
      log.info(`worker ${w.index} retired (${how})`);
      return;
    }
    log.warn(`worker ${w.index} (pid ${w.child.pid}) died ${beforeReady ? 'during boot' : ''} (${how})${w.lastFailure ? `: ${w.lastFailure}` : ''}`.replace('  ', ' '));
    if (!ready) return; // the initial boot decides (bootWorkers)
    if (w.index >= target || paused) return;
    const n = beforeReady ? (failures.get(w.index) ?? 0) + 1 : 0;
    failures.set(w.index, n);
    if (n >= SPAWN_LOOP_LIMIT) {
      tripped.add(w.index);
      log.error(`worker ${w.index} died during boot ${n} times in a row: spawn loop, not respawning it (HUP or TTIN tries again)`);
      return;
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** n);
    log.info(`respawning worker ${w.index} in ${delay} ms`);
    respawnTimers.set(
      w.index,
      setTimeout(() => {
        respawnTimers.delete(w.index);
        if (!stopping && !paused && w.index < target) spawnWorker(w.index);
      }, delay),
    );
  };

  /** Stops `w` gracefully: it drains its work, stops its apps and exits. */
  const retire = (w: WorkerProc): void => {
    w.state = 'retiring';
    sendTo(w, { t: 'stop' });
  };

  /** New workers for every live one; each old one retires once its replacement is ready. */
  const replaceWorkers = async (why: string): Promise<string> => {
    try {
      sysConfig = planNode(plan.launch, process.env).sysConfig; // validates the config first
    } catch (err) {
      log.error(`${why}: the new config is invalid, keeping the running workers: ${describeError(err)}`);
      throw err;
    }
    paused = false;
    tripped.clear();
    failures.clear();
    // Slots waiting for a respawn get their new worker here, not twice.
    for (const t of respawnTimers.values()) clearTimeout(t);
    respawnTimers.clear();
    const old = live();
    const indexes = Array.from({ length: target }, (_, i) => i);
    const results = await Promise.all(
      indexes.map(async (index) => {
        const fresh = spawnWorker(index);
        const ok = await fresh.booted;
        const previous = old.find((w) => w.index === index);
        if (ok) {
          if (previous) retire(previous);
        } else {
          log.error(`${why}: worker ${index}'s replacement failed to boot${fresh.lastFailure ? `: ${fresh.lastFailure}` : ''}; the old worker keeps serving`);
        }
        return ok;
      }),
    );
    for (const w of old) if (w.index >= target) retire(w);
    const okCount = results.filter(Boolean).length;
    log.info(`${why}: ${okCount} of ${target} workers replaced`);
    scheduleBootGc(log);
    return `${why}: ${okCount} of ${target} workers replaced`;
  };

  const workerStatus = async (): Promise<WorkerStatus[]> =>
    Promise.all(
      [...workers].map(
        (w) =>
          new Promise<WorkerStatus>((resolve) => {
            const id = nextStatusId++;
            const basic = { index: w.index, pid: w.child.pid ?? 0, state: w.state };
            const timer = setTimeout(() => {
              statusWaiters.delete(id);
              resolve(basic);
            }, STATUS_TIMEOUT_MS);
            statusWaiters.set(id, (s) => {
              clearTimeout(timer);
              statusWaiters.delete(id);
              resolve(s);
            });
            sendTo(w, { t: 'status', id });
          }),
      ),
    ).then((list) => list.sort((a, b) => a.index - b.index || a.pid - b.pid));

  const shutdown = (stage: Stage | 'exit'): void => {
    stopping = true;
    for (const t of respawnTimers.values()) clearTimeout(t);
    if (stage === 'exit') {
      // The last stage is immediate: no teardown, no wait (services' exit handlers still run).
      log.warn(`exiting now: killing the ${workers.size} worker(s) (the last shutdown stage: no stop, no wait)`);
      for (const w of workers) w.child.kill('SIGKILL');
      finish(1);
      process.exit(1);
    }
    lifecycle.advance(stage);
    // While another master serves the same sockets (during USR2), this one's workers need not
    // refuse anything: they finish their work and stop accepting, and the other master takes it.
    const workerStage = stage !== 'hanging-up' && siblingMaster() ? 'draining' : stage;
    if (workerStage !== stage) log.info(`another master (pid ${siblingMaster()}) serves the same sockets: the workers drain instead of refusing work`);
    for (const w of workers) sendTo(w, { t: 'stage', stage: workerStage });
    if (workers.size === 0) finish(0);
  };

  /** The pid of the other master on our sockets, while it runs: our USR2 successor, or the old master that started us. */
  const reexecParent = process.env.NODEREL_REEXEC ? process.ppid : undefined;
  const siblingMaster = (): number | undefined => {
    const successor = succession.current();
    if (successor?.pid !== undefined && successor.exitCode === null && successor.signalCode === null) return successor.pid;
    if (reexecParent !== undefined && process.ppid === reexecParent) return reexecParent;
    return undefined;
  };

  const uninstall = installSignalHandlers({
    shutdown(request: ShutdownRequest, signal: NodeJS.Signals) {
      log.info(`received ${signal} (shutdown step ${request.step} of 4)`);
      shutdown(request.stage);
    },
  });
  const onSignal = (signal: NodeJS.Signals, fn: () => void): void => {
    process.on(signal, () => {
      if (stopping) return;
      log.info(`received ${signal}`);
      fn();
    });
  };
  onSignal('SIGHUP', () => {
    if (process.env.NODEREL_HUP === 'reopen_logs') opts.reopenLogs?.();
    else void replaceWorkers('HUP').catch(() => {});
  });
  onSignal('SIGWINCH', () => {
    if (!opts.daemonized) {
      log.info('WINCH ignored: the node is not daemonized (a terminal resize sends it)');
      return;
    }
    paused = true;
    for (const w of live()) retire(w);
    log.info('WINCH: workers stopping gracefully; the master keeps the sockets (HUP brings them back)');
  });
  // services.ts toggles the level on ALRM first (its listener came first); pass it on.
  process.on('SIGALRM', () => {
    for (const w of workers) sendTo(w, { t: 'level', level: control.level });
  });
  onSignal('SIGTTIN', () => {
    if (tripped.size > 0 && !paused) {
      // The pool back to its size first: the slots the spawn-loop guard holds get a new worker.
      const slots = [...tripped].filter((i) => i < target).sort((a, b) => a - b);
      tripped.clear();
      for (const i of slots) {
        failures.set(i, 0);
        if (![...workers].some((w) => w.index === i && w.state !== 'retiring')) spawnWorker(i);
      }
      log.info(`TTIN: respawning worker${slots.length === 1 ? '' : 's'} ${slots.join(', ')} (spawn-loop guard cleared); ${target} workers (TTIN again for one more)`);
      return;
    }
    target += 1;
    tripped.delete(target - 1);
    log.info(`TTIN: ${target} workers`);
    if (!paused) spawnWorker(target - 1);
  });
  onSignal('SIGTTOU', () => {
    if (target === 0) return;
    target -= 1;
    log.info(`TTOU: ${target} workers`);
    for (const w of live()) if (w.index >= target) retire(w);
  });

  const succession = successorControl({
    what: 'master',
    retireWith: 'WINCH and QUIT',
    pidFile: opts.pidFile,
    launcher: releasePath(plan.launch.root, launcherFile(plan.manifest.name)),
    nodeType: nodeType.name,
    nodeName: info.name,
    log,
    handles: () => listeners,
    stopping: () => stopping,
    onGone: () => opts.onSuccessorGone?.(),
  });
  /** USR2: start a new master on our sockets; resolves with its pid once it is ready. */
  const reexec = (): Promise<number> => succession.reexec();
  const completeHandover = (): void => succession.completeHandover();
  onSignal('SIGUSR2', () => {
    void reexec().then(
      (pid) => opts.onSuccessor?.(pid),
      () => {},
    );
  });

  /** A master started by USR2: the old master's listening sockets arrive before anything else. */
  const adoptListeners = (): Promise<void> =>
    process.env.NODEREL_REEXEC && process.send ? adoptHandles(listeners, log, 'the old master') : Promise.resolve();

  /**
   * eval and the REPLs: the code runs in a ready worker, where the apps are; a REPL's session
   * stays in its worker (its bindings live there) while that worker serves.
   */
  const sessionWorkers = new Map<string, WorkerProc>();
  const evaluateInWorker = (code: string, opts: { session?: string; timeoutMs?: number } = {}): Promise<{ text: string; undefined: boolean }> => {
    const { session, timeoutMs = DEFAULT_EVAL_TIMEOUT_MS } = opts;
    const stuck = session === undefined ? undefined : sessionWorkers.get(session);
    const w = stuck && workers.has(stuck) && stuck.state === 'ready' ? stuck : [...workers].find((x) => x.state === 'ready');
    if (!w) return Promise.reject(new Error('no worker is ready to evaluate in; see status'));
    if (session !== undefined) sessionWorkers.set(session, w);
    const id = nextStatusId++;
    return new Promise((resolve, reject) => {
      const gone = (): void => {
        evalWaiters.delete(id);
        clearTimeout(late);
        reject(new Error(`worker ${w.index} (pid ${w.child.pid}) exited before it answered`));
      };
      // the worker bounds the evaluation itself; this is for a worker that cannot answer
      const late = setTimeout(() => {
        evalWaiters.delete(id);
        w.child.off('exit', gone);
        reject(new Error(`worker ${w.index} (pid ${w.child.pid}) did not answer within ${Math.round(timeoutMs / 1000) + 5} s`));
      }, timeoutMs + 5_000);
      w.child.once('exit', gone);
      evalWaiters.set(id, (reply) => {
        evalWaiters.delete(id);
        clearTimeout(late);
        w.child.off('exit', gone);
        if (reply.ok) resolve({ text: reply.text, undefined: reply.undefined === true });
        else {
          // the worker's message is the whole story: no stack of the master's
          const err = new Error(reply.text);
          err.stack = reply.text;
          Object.defineProperty(err, 'incomplete', { value: reply.incomplete === true, enumerable: false });
          reject(err);
        }
      });
      sendTo(w, { t: 'eval', id, code, session, timeoutMs });
    });
  };
  const endEvalSession = (session: string): void => {
    const w = sessionWorkers.get(session);
    sessionWorkers.delete(session);
    if (w && workers.has(w)) sendTo(w, { t: 'eval-end', session });
  };

  const handle: NodeHandle = {
    info,
    lifecycle,
    apps: new Map(),
    evaluate: evaluateInWorker,
    endEvalSession,
    get config() {
      return sysConfig;
    },
    get ready() {
      return ready;
    },
    startedAt: Date.now(),
    advance: (stage) => shutdown(stage),
    stop: () => process.emit('SIGTERM', 'SIGTERM'),
    restartApps: () => replaceWorkers('restart'),
    reloadConfig: () => replaceWorkers('reload'),
    workers: workerStatus,
    spawnLoop: () => [...tripped].sort((a, b) => a - b),
    workerTarget: () => target,
    degraded: () => {
      if (!ready || stopping || paused) return undefined;
      const serving = [...workers].filter((w) => w.state === 'ready').length;
      if (tripped.size === 0 && (serving > 0 || target === 0)) return undefined;
      const slots = [...tripped].sort((a, b) => a - b);
      const loop = slots.length ? `spawn loop: worker${slots.length === 1 ? '' : 's'} ${slots.join(', ')} not respawned (HUP or TTIN tries again); ` : '';
      return `${loop}${serving} of ${target} workers ready${serving === 0 ? ', no worker serves the listening sockets (connections are refused)' : ''}`;
    },
    reexec,
    completeHandover,
  };
  opts.onStarting?.(handle);

  // The initial boot: every worker must come up, else the node fails to start.
  const boot = async (): Promise<void> => {
    await adoptListeners();
    if (stopping) {
      finish(0); // stopped before any worker was spawned
      return;
    }
    const first = Array.from({ length: target }, (_, i) => spawnWorker(i));
    const oks = await Promise.all(first.map((w) => w.booted));
    if (stopping) return;
    const bad = first.find((_, i) => !oks[i]);
    if (bad) {
      const message = `worker ${bad.index} failed to start${bad.lastFailure ? `: ${bad.lastFailure}` : ''}`;
      log.error(message);
      opts.onStartFailed?.(message);
      stopping = true;
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all([...workers].map((w) => new Promise((r) => w.child.once('exit', r))));
      finish(1);
      return;
    }
    ready = true;
    log.info(`node ${info.name} ready (${plan.manifest.name} ${plan.manifest.version}, apps: ${nodeType.apps.join(', ')}; ${target} workers)`);
    opts.onReady?.(handle);
    scheduleBootGc(log);
    // A master started by USR2 tells the old one; the old one answers 'ctl-free' (services.ts).
    if (process.env.NODEREL_REEXEC && process.send) process.send({ t: 'ready' });
  };
  void boot();
  return exit;
}
