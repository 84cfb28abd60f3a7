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
 * has one writer to its console.log. The handlers are registered with signals.ts (owner
 * `master`); its state is one object, `Master`, with the requests to workers in `WorkerRequests`
 * and the sockets in `ListenerTable`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { type Server } from 'node:net';
import { join } from 'node:path';
import { launcher as launcherFile, releasePath } from '../../contract/layout.js';
import { DEFAULT_EVAL_TIMEOUT_MS } from '../control/evaluate.js';
import { scheduleBootGc } from './heap.js';
import { workerEnv } from '../release/launch-env.js';
import { Lifecycle, type Stage } from '../apps/lifecycle.js';
import { createLogger, describeError, type LogControl, type Logger } from '../logs/log.js';
import { planNode } from './node.js';
import type { Evaluation, FromWorker, MasterOptions, NodeHandle, NodePlan, ToWorker, WorkerStatus } from './node-types.js';
import { installSignalHandlers, signalRouter, stopAsTerm, type ShutdownRequest } from './signals.js';
import { adoptActivatedSockets, adoptHandles, bindListener, heldFor, listenKey, type ListenAddress, type RawHandle } from './listeners.js';
import { successorControl, type SuccessorControl } from './successor.js';

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

type Reply = Extract<FromWorker, { id: number }>;

/**
 * The requests to workers that wait for an answer (status, eval): one id counter for both, and
 * one table of the answers awaited.
 */
class WorkerRequests {
  #nextId = 1;
  readonly #waiting = new Map<number, (reply: Reply) => void>();
  readonly #send: (w: WorkerProc, msg: ToWorker) => void;

  constructor(send: (w: WorkerProc, msg: ToWorker) => void) {
    this.#send = send;
  }

  /** A worker's answer (status or eval) to the request of its id. */
  answer(reply: Reply): void {
    this.#waiting.get(reply.id)?.(reply);
  }

  /** The worker's status; what the master knows of it when the worker does not answer in time. */
  status(w: WorkerProc): Promise<WorkerStatus> {
    return new Promise<WorkerStatus>((resolve) => {
      const id = this.#nextId++;
      const basic = { index: w.index, pid: w.child.pid ?? 0, state: w.state };
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        resolve(basic);
      }, STATUS_TIMEOUT_MS);
      this.#waiting.set(id, (reply) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        if (reply.t === 'status') resolve({ ...basic, state: w.state, stage: reply.stage, in_flight: reply.in_flight, rss: reply.rss, uptime_s: reply.uptime_s });
      });
      this.#send(w, { t: 'status', id });
    });
  }

  /** Evaluates `code` in `w`, within `timeoutMs` (the worker bounds it; this is for a worker that cannot answer). */
  evaluate(w: WorkerProc, code: string, session: string | undefined, timeoutMs: number): Promise<Evaluation> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const gone = (): void => {
        this.#waiting.delete(id);
        clearTimeout(late);
        reject(new Error(`worker ${w.index} (pid ${w.child.pid}) exited before it answered`));
      };
      const late = setTimeout(() => {
        this.#waiting.delete(id);
        w.child.off('exit', gone);
        reject(new Error(`worker ${w.index} (pid ${w.child.pid}) did not answer within ${Math.round(timeoutMs / 1000) + 5} s`));
      }, timeoutMs + 5_000);
      w.child.once('exit', gone);
      this.#waiting.set(id, (reply) => {
        this.#waiting.delete(id);
        clearTimeout(late);
        w.child.off('exit', gone);
        if (reply.t !== 'eval') return;
        if (reply.ok) resolve({ text: reply.text, undefined: reply.undefined === true });
        else reject(workerError(reply.text, reply.incomplete === true));
      });
      this.#send(w, { t: 'eval', id, code, session, timeoutMs });
    });
  }
}

/** An evaluation's failure in a worker: the worker's message is the whole story (no stack of the master's). */
function workerError(text: string, incomplete: boolean): Error {
  const err = new Error(text);
  err.stack = text;
  Object.defineProperty(err, 'incomplete', { value: incomplete, enumerable: false });
  return err;
}

/** The bound (not listening) sockets the master holds, one per address, and the workers serving each. */
class ListenerTable {
  readonly handles = new Map<string, RawHandle>();
  /** Sockets systemd passed (socket activation): never closed while the node runs, nor bound again. */
  readonly #activated = new Set<RawHandle>();
  /** The workers that listen on each address (listenKey): a socket nobody serves is closed. */
  readonly #servedBy = new Map<string, Set<WorkerProc>>();

  /** The socket for `address` (bound on first use, then shared by every worker), served by `w` from now. */
  async serve(w: WorkerProc, address: ListenAddress): Promise<RawHandle> {
    const key = listenKey(address);
    let h = heldFor(this.handles, address);
    if (!h) {
      h = await bindListener(address);
      this.handles.set(key, h);
    }
    if (!this.#servedBy.has(key)) this.#servedBy.set(key, new Set());
    this.#servedBy.get(key)!.add(w);
    return h;
  }

  /** `w` is gone: the sockets it was the last to serve are closed, unless `keep`; returns their keys. */
  release(w: WorkerProc, keep: boolean): string[] {
    const closed: string[] = [];
    for (const [key, set] of this.#servedBy) {
      if (!set.delete(w) || set.size > 0) continue;
      this.#servedBy.delete(key);
      const h = keep ? undefined : this.handles.get(key);
      if (!h || this.#activated.has(h)) continue;
      this.handles.delete(key);
      h.close();
      closed.push(key);
    }
    return closed;
  }

  /** Socket activation: systemd's sockets, for the addresses the apps listen on. */
  adoptActivated(count: number, log: Logger): void {
    const before = new Set(this.handles.values());
    adoptActivatedSockets(this.handles, count, log);
    for (const h of this.handles.values()) if (!before.has(h)) this.#activated.add(h);
  }

  closeAll(): void {
    for (const h of this.handles.values()) h.close();
  }
}

/** Copies a worker's output to `out` a whole line at a time (the master has one writer per stream). */
function pipeLines(stream: NodeJS.ReadableStream | null, out: NodeJS.WritableStream): void {
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
}

/** Runs the master until its workers are gone; resolves with the exit code. */
export function runMaster(plan: NodePlan, control: LogControl, opts: MasterOptions): Promise<number> {
  return new Master(plan, control, opts).run();
}

/**
 * The master's state in one place: the pool (workers, target size, spawn-loop guard, respawn
 * timers), the sockets, the requests in flight, and the run state (ready, stopping, paused by
 * WINCH). The signal handlers (registered with signals.ts) and the handle are its methods.
 */
class Master {
  readonly #plan: NodePlan;
  readonly #control: LogControl;
  readonly #opts: MasterOptions;
  readonly #log: Logger;
  readonly #lifecycle: Lifecycle;
  readonly #workers = new Set<WorkerProc>();
  readonly #sockets = new ListenerTable();
  readonly #requests = new WorkerRequests((w, msg) => this.#sendTo(w, msg));
  /** A REPL's session stays in its worker (its bindings live there) while that worker serves. */
  readonly #sessionWorkers = new Map<string, WorkerProc>();
  /** Boot deaths in a row, per worker slot. */
  readonly #failures = new Map<number, number>();
  /** Slots the spawn-loop guard holds. */
  readonly #tripped = new Set<number>();
  readonly #respawnTimers = new Map<number, NodeJS.Timeout>();
  readonly #succession: SuccessorControl;
  /** The old master that started this one (USR2), while it runs. */
  readonly #reexecParent: number | undefined;
  #target: number;
  #ready = false;
  #stopping = false;
  /** WINCH: the workers are stopped, the master keeps the sockets. */
  #paused = false;
  #sysConfig: NodePlan['sysConfig'];
  #finished = false;
  #resolveExit: (code: number) => void = () => {};
  readonly #exit = new Promise<number>((resolve) => (this.#resolveExit = resolve));
  readonly #keepAlive = setInterval(() => {}, 1 << 30);
  #removeShutdown: () => void = () => {};

  constructor(plan: NodePlan, control: LogControl, opts: MasterOptions) {
    this.#plan = plan;
    this.#control = control;
    this.#opts = opts;
    this.#log = createLogger(plan.info.name, control);
    this.#lifecycle = new Lifecycle((err) => this.#log.error(`a stage listener failed: ${describeError(err, true)}`));
    this.#target = plan.nodeType.workers;
    this.#sysConfig = plan.sysConfig;
    this.#reexecParent = plan.launch.reexec ? process.ppid : undefined;
    this.#succession = successorControl({
      what: 'master',
      retireWith: 'WINCH and QUIT',
      pidFile: opts.pidFile,
      launcher: releasePath(plan.launch.root, launcherFile(plan.manifest.name)),
      nodeType: plan.nodeType.name,
      nodeName: plan.info.name,
      log: this.#log,
      handles: () => this.#sockets.handles,
      stopping: () => this.#stopping,
      onGone: () => opts.onSuccessorGone?.(),
    });
  }

  run(): Promise<number> {
    process.title = this.#opts.processTitle ?? this.#plan.nodeType.processName;
    this.#installSignals();
    const handle = this.#handle();
    this.#opts.onStarting?.(handle);
    void this.#boot(handle);
    return this.#exit;
  }

  #finish(code: number): void {
    if (this.#finished) return;
    this.#finished = true;
    clearInterval(this.#keepAlive);
    for (const t of this.#respawnTimers.values()) clearTimeout(t);
    this.#sockets.closeAll();
    this.#removeShutdown();
    this.#resolveExit(code);
  }

  #sendTo(w: WorkerProc, msg: ToWorker, handle?: unknown): void {
    if (!w.child.connected) return;
    try {
      w.child.send(msg, handle as Server | undefined);
    } catch (err) {
      this.#log.warn(`could not reach worker ${w.index} (pid ${w.child.pid}): ${describeError(err)}`);
    }
  }

  #live(): WorkerProc[] {
    return [...this.#workers].filter((w) => w.state !== 'retiring');
  }

  #spawnWorker(index: number): WorkerProc {
    const child = fork(WORKER_MAIN, [], {
      env: workerEnv(index, this.#control.level),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: process.execArgv,
    });
    let settleBoot: (ok: boolean) => void = () => {};
    const booted = new Promise<boolean>((resolve) => (settleBoot = resolve));
    const w: WorkerProc = { index, child, state: 'booting', booted, settleBoot };
    this.#workers.add(w);
    pipeLines(child.stdout, process.stdout);
    pipeLines(child.stderr, process.stderr);
    child.on('message', (msg: FromWorker) => void this.#onMessage(w, msg));
    // A send to a worker that is dying fails with EPIPE as an 'error' event: without a listener
    // it would take the master down (its exit is handled below).
    child.on('error', (err) => this.#log.debug(`worker ${index} (pid ${child.pid}): ${describeError(err)}`));
    child.on('exit', (code, signal) => this.#onExit(w, code, signal));
    this.#log.debug(`worker ${index} spawned (pid ${child.pid})`);
    return w;
  }

  async #onMessage(w: WorkerProc, msg: FromWorker): Promise<void> {
    switch (msg.t) {
      case 'listen':
        try {
          const h = await this.#sockets.serve(w, { host: msg.host, port: msg.port, ipv6Only: msg.ipv6Only === true });
          this.#sendTo(w, { t: 'listen-ok', id: msg.id }, h);
        } catch (err) {
          this.#sendTo(w, { t: 'listen-err', id: msg.id, message: (err as Error).message, code: (err as NodeJS.ErrnoException).code });
        }
        break;
      case 'ready':
        w.state = w.state === 'retiring' ? 'retiring' : 'ready';
        this.#failures.set(w.index, 0);
        this.#log.info(`worker ${w.index} ready (pid ${w.child.pid})`);
        w.settleBoot(true);
        break;
      case 'failed':
        w.lastFailure = msg.message;
        break;
      case 'eval':
      case 'status':
        this.#requests.answer(msg);
        break;
      default:
        break;
    }
  }

  /**
   * Closes the listening sockets `w` was the last worker to serve: the kernel would otherwise
   * queue connections on them that nobody accepts. Kept while the master is stopping (it closes
   * them all), after WINCH (the operator keeps the sockets on purpose) and after a hand-over to
   * a new master (they are shared with it).
   */
  #releaseListeners(w: WorkerProc): void {
    const keep = this.#stopping || this.#paused || this.#siblingMaster() !== undefined;
    for (const key of this.#sockets.release(w, keep)) {
      this.#log.warn(`no worker serves ${key} any more: closed its listening socket (connections are refused) until a worker listens on it again`);
    }
  }

  #onExit(w: WorkerProc, code: number | null, signal: NodeJS.Signals | null): void {
    this.#workers.delete(w);
    this.#releaseListeners(w);
    const how = signal ? `killed by ${signal}` : `exit code ${code}`;
    const beforeReady = w.state === 'booting';
    w.settleBoot(false);
    if (this.#stopping) {
      this.#log.info(`worker ${w.index} stopped (${how})`);
      if (this.#workers.size === 0) {
        this.#log.info(`node ${this.#plan.info.name} stopped`);
        this.#finish(0);
      }
      return;
    }
    if (w.state === 'retiring') {
      this.#log.info(`worker ${w.index} retired (${how})`);
      return;
    }
    this.#log.warn(`worker ${w.index} (pid ${w.child.pid}) died ${beforeReady ? 'during boot' : ''} (${how})${w.lastFailure ? `: ${w.lastFailure}` : ''}`.replace('  ', ' '));
    if (!this.#ready) return; // the initial boot decides (#boot)
    if (w.index >= this.#target || this.#paused) return;
    this.#respawn(w.index, beforeReady);
  }

  /** A worker of slot `index` died: a new one after a backoff, unless the spawn-loop guard trips. */
  #respawn(index: number, beforeReady: boolean): void {
    const n = beforeReady ? (this.#failures.get(index) ?? 0) + 1 : 0;
    this.#failures.set(index, n);
    if (n >= SPAWN_LOOP_LIMIT) {
      this.#tripped.add(index);
      this.#log.error(`worker ${index} died during boot ${n} times in a row: spawn loop, not respawning it (HUP or TTIN tries again)`);
      return;
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** n);
    this.#log.info(`respawning worker ${index} in ${delay} ms`);
    this.#respawnTimers.set(
      index,
      setTimeout(() => {
        this.#respawnTimers.delete(index);
        if (!this.#stopping && !this.#paused && index < this.#target) this.#spawnWorker(index);
      }, delay),
    );
  }

  /** Stops `w` gracefully: it drains its work, stops its apps and exits. */
  #retire(w: WorkerProc): void {
    w.state = 'retiring';
    this.#sendTo(w, { t: 'stop' });
  }

  /** New workers for every live one; each old one retires once its replacement is ready. */
  async #replaceWorkers(why: string): Promise<string> {
    try {
      this.#sysConfig = planNode(this.#plan.launch, process.env).sysConfig; // validates the config first
    } catch (err) {
      this.#log.error(`${why}: the new config is invalid, keeping the running workers: ${describeError(err)}`);
      throw err;
    }
    this.#paused = false;
    this.#tripped.clear();
    this.#failures.clear();
    // Slots waiting for a respawn get their new worker here, not twice.
    for (const t of this.#respawnTimers.values()) clearTimeout(t);
    this.#respawnTimers.clear();
    const old = this.#live();
    const indexes = Array.from({ length: this.#target }, (_, i) => i);
    const results = await Promise.all(
      indexes.map(async (index) => {
        const fresh = this.#spawnWorker(index);
        const ok = await fresh.booted;
        const previous = old.find((w) => w.index === index);
        if (ok) {
          if (previous) this.#retire(previous);
        } else {
          this.#log.error(`${why}: worker ${index}'s replacement failed to boot${fresh.lastFailure ? `: ${fresh.lastFailure}` : ''}; the old worker keeps serving`);
        }
        return ok;
      }),
    );
    for (const w of old) if (w.index >= this.#target) this.#retire(w);
    const okCount = results.filter(Boolean).length;
    this.#log.info(`${why}: ${okCount} of ${this.#target} workers replaced`);
    scheduleBootGc(this.#log);
    return `${why}: ${okCount} of ${this.#target} workers replaced`;
  }

  #workerStatus(): Promise<WorkerStatus[]> {
    return Promise.all([...this.#workers].map((w) => this.#requests.status(w))).then((list) => list.sort((a, b) => a.index - b.index || a.pid - b.pid));
  }

  #shutdown(stage: Stage | 'exit'): void {
    this.#stopping = true;
    for (const t of this.#respawnTimers.values()) clearTimeout(t);
    if (stage === 'exit') {
      // The last stage is immediate: no teardown, no wait (services' exit handlers still run).
      this.#log.warn(`exiting now: killing the ${this.#workers.size} worker(s) (the last shutdown stage: no stop, no wait)`);
      for (const w of this.#workers) w.child.kill('SIGKILL');
      this.#finish(1);
      process.exit(1);
    }
    this.#lifecycle.advance(stage);
    // While another master serves the same sockets (during USR2), this one's workers need not
    // refuse anything: they finish their work and stop accepting, and the other master takes it.
    const sibling = this.#siblingMaster();
    const workerStage = stage !== 'hanging-up' && sibling ? 'draining' : stage;
    if (workerStage !== stage) this.#log.info(`another master (pid ${sibling}) serves the same sockets: the workers drain instead of refusing work`);
    for (const w of this.#workers) this.#sendTo(w, { t: 'stage', stage: workerStage });
    if (this.#workers.size === 0) this.#finish(0);
  }

  /** The pid of the other master on our sockets, while it runs: our USR2 successor, or the old master that started us. */
  #siblingMaster(): number | undefined {
    const successor = this.#succession.current();
    if (successor?.pid !== undefined && successor.exitCode === null && successor.signalCode === null) return successor.pid;
    if (this.#reexecParent !== undefined && process.ppid === this.#reexecParent) return this.#reexecParent;
    return undefined;
  }

  /** The master's signals (signals.ts runs services.ts's ALRM handler, which sets the level, before this one's). */
  #installSignals(): void {
    this.#removeShutdown = installSignalHandlers({
      shutdown: (request: ShutdownRequest, signal: NodeJS.Signals) => {
        this.#log.info(`received ${signal} (shutdown step ${request.step} of 4)`);
        this.#shutdown(request.stage);
      },
    });
    const router = signalRouter();
    const on = (signal: NodeJS.Signals, name: string, fn: () => void): void => {
      router.on(signal, 'master', name, () => {
        if (this.#stopping) return;
        this.#log.info(`received ${signal}`);
        fn();
      });
    };
    on('SIGHUP', 'replace workers', () => this.#onHup());
    on('SIGWINCH', 'stop workers', () => this.#onWinch());
    router.on('SIGALRM', 'master', 'pass the log level on', () => {
      for (const w of this.#workers) this.#sendTo(w, { t: 'level', level: this.#control.level });
    });
    on('SIGTTIN', 'one worker more', () => this.#onTtin());
    on('SIGTTOU', 'one worker fewer', () => this.#onTtou());
    on('SIGUSR2', 're-exec', () => {
      void this.#succession.reexec().then(
        (pid) => this.#opts.onSuccessor?.(pid),
        () => {},
      );
    });
  }

  #onHup(): void {
    if (this.#plan.launch.hupReopensLogs) this.#opts.reopenLogs?.();
    else void this.#replaceWorkers('HUP').catch(() => {});
  }

  #onWinch(): void {
    if (!this.#opts.daemonized) {
      this.#log.info('WINCH ignored: the node is not daemonized (a terminal resize sends it)');
      return;
    }
    this.#paused = true;
    for (const w of this.#live()) this.#retire(w);
    this.#log.info('WINCH: workers stopping gracefully; the master keeps the sockets (HUP brings them back)');
  }

  #onTtin(): void {
    if (this.#tripped.size > 0 && !this.#paused) {
      // The pool back to its size first: the slots the spawn-loop guard holds get a new worker.
      const slots = [...this.#tripped].filter((i) => i < this.#target).sort((a, b) => a - b);
      this.#tripped.clear();
      for (const i of slots) {
        this.#failures.set(i, 0);
        if (![...this.#workers].some((w) => w.index === i && w.state !== 'retiring')) this.#spawnWorker(i);
      }
      this.#log.info(`TTIN: respawning worker${slots.length === 1 ? '' : 's'} ${slots.join(', ')} (spawn-loop guard cleared); ${this.#target} workers (TTIN again for one more)`);
      return;
    }
    this.#target += 1;
    this.#tripped.delete(this.#target - 1);
    this.#log.info(`TTIN: ${this.#target} workers`);
    if (!this.#paused) this.#spawnWorker(this.#target - 1);
  }

  #onTtou(): void {
    if (this.#target === 0) return;
    this.#target -= 1;
    this.#log.info(`TTOU: ${this.#target} workers`);
    for (const w of this.#live()) if (w.index >= this.#target) this.#retire(w);
  }

  /** eval and the REPLs: the code runs in a ready worker, where the apps are. */
  #evaluateInWorker(code: string, opts: { session?: string; timeoutMs?: number } = {}): Promise<Evaluation> {
    const { session, timeoutMs = DEFAULT_EVAL_TIMEOUT_MS } = opts;
    const stuck = session === undefined ? undefined : this.#sessionWorkers.get(session);
    const w = stuck && this.#workers.has(stuck) && stuck.state === 'ready' ? stuck : [...this.#workers].find((x) => x.state === 'ready');
    if (!w) return Promise.reject(new Error('no worker is ready to evaluate in; see status'));
    if (session !== undefined) this.#sessionWorkers.set(session, w);
    return this.#requests.evaluate(w, code, session, timeoutMs);
  }

  #endEvalSession(session: string): void {
    const w = this.#sessionWorkers.get(session);
    this.#sessionWorkers.delete(session);
    if (w && this.#workers.has(w)) this.#sendTo(w, { t: 'eval-end', session });
  }

  /** Why the node serves less than it should; undefined when healthy. */
  #degraded(): string | undefined {
    if (!this.#ready || this.#stopping || this.#paused) return undefined;
    const serving = [...this.#workers].filter((w) => w.state === 'ready').length;
    if (this.#tripped.size === 0 && (serving > 0 || this.#target === 0)) return undefined;
    const slots = [...this.#tripped].sort((a, b) => a - b);
    const loop = slots.length ? `spawn loop: worker${slots.length === 1 ? '' : 's'} ${slots.join(', ')} not respawned (HUP or TTIN tries again); ` : '';
    return `${loop}${serving} of ${this.#target} workers ready${serving === 0 ? ', no worker serves the listening sockets (connections are refused)' : ''}`;
  }

  #handle(): NodeHandle {
    const master = this;
    return {
      info: this.#plan.info,
      lifecycle: this.#lifecycle,
      apps: new Map(),
      evaluate: (code, opts) => this.#evaluateInWorker(code, opts),
      endEvalSession: (session) => this.#endEvalSession(session),
      get config() {
        return master.#sysConfig;
      },
      get ready() {
        return master.#ready;
      },
      startedAt: Date.now(),
      advance: (stage) => this.#shutdown(stage),
      stop: stopAsTerm,
      restartApps: () => this.#replaceWorkers('restart'),
      reloadConfig: () => this.#replaceWorkers('reload'),
      workers: () => this.#workerStatus(),
      spawnLoop: () => [...this.#tripped].sort((a, b) => a - b),
      workerTarget: () => this.#target,
      degraded: () => this.#degraded(),
      /** USR2: start a new master on our sockets; resolves with its pid once it is ready. */
      reexec: () => this.#succession.reexec(),
      completeHandover: () => this.#succession.completeHandover(),
    };
  }

  /** The initial boot: every worker must come up, else the node fails to start. */
  async #boot(handle: NodeHandle): Promise<void> {
    // A master started by USR2: the old master's listening sockets arrive before anything else.
    if (this.#plan.launch.reexec && process.send) await adoptHandles(this.#sockets.handles, this.#log, 'the old master');
    else if (this.#plan.launch.listenFds > 0) this.#sockets.adoptActivated(this.#plan.launch.listenFds, this.#log);
    delete process.env.NODEREL_LISTEN_FDS;
    if (this.#stopping) {
      this.#finish(0); // stopped before any worker was spawned
      return;
    }
    const first = Array.from({ length: this.#target }, (_, i) => this.#spawnWorker(i));
    const oks = await Promise.all(first.map((w) => w.booted));
    if (this.#stopping) return;
    const bad = first.find((_, i) => !oks[i]);
    if (bad) return this.#bootFailed(bad);
    this.#ready = true;
    const { manifest, nodeType, info } = this.#plan;
    this.#log.info(`node ${info.name} ready (${manifest.name} ${manifest.version}, apps: ${nodeType.apps.join(', ')}; ${this.#target} workers)`);
    this.#opts.onReady?.(handle);
    scheduleBootGc(this.#log);
    // A master started by USR2 tells the old one; the old one answers 'ctl-free' (services.ts).
    // The old one may be gone already (QUIT too early): the callback takes the send's error.
    if (this.#plan.launch.reexec && process.send && process.connected) process.send({ t: 'ready' }, undefined, {}, () => {});
  }

  async #bootFailed(bad: WorkerProc): Promise<void> {
    const message = `worker ${bad.index} failed to start${bad.lastFailure ? `: ${bad.lastFailure}` : ''}`;
    this.#log.error(message);
    this.#opts.onStartFailed?.(message);
    this.#stopping = true;
    for (const w of this.#workers) w.child.kill('SIGTERM');
    await Promise.all([...this.#workers].map((w) => new Promise((r) => w.child.once('exit', r))));
    this.#finish(1);
  }
}
