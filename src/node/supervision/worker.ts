/**
 * A worker of a node type with `workers: N` (unicorn's model): runs the apps; its TCP
 * listens are served by the master, which holds the listening sockets and hands each worker the
 * same bound socket, so workers accept connections directly (no hand-off through the master).
 * Stages, stop, status and trace come from the master over IPC; losing the master (even to
 * SIGKILL) ends the worker at once, so no worker is ever orphaned.
 *
 *   worker -> master   {t:'listen', id, host, port, ipv6Only}  {t:'ready'}  {t:'failed', message}
 *                      {t:'status', id, ...}
 *   master -> worker   {t:'listen-ok', id} + handle | {t:'listen-err', id, message, code}
 *                      {t:'stage', stage}  {t:'stop'}  {t:'status', id}  {t:'level', level}
 *                      {t:'eval', id, code, session?, timeoutMs?}  {t:'eval-end', session}
 * (the message types: node-types.ts; the master's side: master.ts)
 */
import { routeListens, type RawHandle } from './listeners.js';
import type { Stage } from '../apps/lifecycle.js';
import { describeValue, EvalSession, isIncompleteInput } from '../control/evaluate.js';
import { collectBootGarbage, describeBootGc } from './heap.js';
import { createLogger, isLevel, type LogControl } from '../logs/log.js';
import { planNode, runForeground } from './node.js';
import type { FromWorker, NodeHandle, ToWorker } from './node-types.js';
import { readLaunchEnv, readLaunchSettings } from '../release/launch-env.js';
import { signalRouter } from './signals.js';

function send(msg: FromWorker): void {
  process.send?.(msg);
}

/** Routes TCP listens to the master: it binds (once per address) and sends us the socket. */
function installListenBroker(): void {
  const pending = new Map<number, (err: Error | undefined, handle?: RawHandle) => void>();
  let nextId = 1;
  process.on('message', (msg: ToWorker, handle: unknown) => {
    if (msg.t !== 'listen-ok' && msg.t !== 'listen-err') return;
    const done = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.t === 'listen-ok') done?.(undefined, handle as RawHandle);
    else done?.(Object.assign(new Error(msg.message), { code: msg.code, syscall: 'listen' }));
  });
  routeListens(
    ({ host, port, ipv6Only }) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, (err, handle) => (err ? reject(err) : resolve(handle!)));
        send({ t: 'listen', id, host, port, ipv6Only });
      }),
    { active: () => process.connected },
  );
}

/** Runs this process as worker `NODEREL_WORKER_INDEX` of its node; resolves with the exit code. */
export async function runWorker(control: LogControl, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const index = readLaunchSettings(env).workerIndex;
  // Lost master: nobody can stop us any more, and nobody would see our output. Leave now.
  process.on('disconnect', () => process.exit(1));
  const router = signalRouter();
  for (const signal of WORKER_IGNORES) router.on(signal, 'worker', 'ignored: the master says', () => {});
  installListenBroker();
  const plan = planNode(readLaunchEnv(env), env);
  const worker = new WorkerState(control);
  process.on('message', (msg: ToWorker) => worker.onMessage(msg));
  // The runtime's boot garbage goes before the apps start (heap.ts): theirs is left to V8, as
  // under bare node, and no request waits on the pause.
  const logScope = `${plan.info.name}/w${index}`;
  const gc = collectBootGarbage(env);
  if (gc) createLogger(logScope, control).debug(describeBootGc(gc));
  return runForeground(plan, control, {
    signals: false,
    processTitle: `${plan.nodeType.processName} worker[${index}]`,
    logScope,
    onStarting: (h) => worker.started(h),
    onReady: () => send({ t: 'ready' }),
    onStartFailed: (message) => send({ t: 'failed', message }),
  });
}

/**
 * The signals a worker ignores (signals.ts): a terminal's reach the whole process group, and the
 * master turns its own into messages. TERM keeps its default: the master's last resort.
 */
const WORKER_IGNORES = ['SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR2', 'SIGWINCH', 'SIGTTIN', 'SIGTTOU', 'SIGALRM'] as const;

/** What a worker keeps between its master's messages: the node's handle, an early stage, the REPL sessions. */
class WorkerState {
  readonly #control: LogControl;
  #handle: NodeHandle | undefined;
  /** A stage the master sent before the node existed (a stop while booting): applied then. */
  #early: Stage | 'exit' | undefined;
  /** a REPL's evaluation session lives here as long as the REPL is open; an eval has its own */
  readonly #sessions = new Map<string, EvalSession>();

  constructor(control: LogControl) {
    this.#control = control;
  }

  /** The node exists (its apps are starting). */
  started(h: NodeHandle): void {
    this.#handle = h;
    const early = this.#early;
    if (early !== undefined) queueMicrotask(() => h.advance(early));
  }

  #advance(stage: Stage | 'exit'): void {
    if (this.#handle) this.#handle.advance(stage);
    else this.#early = stage;
  }

  #sessionFor(key: string | undefined, h: NodeHandle): EvalSession {
    let session = key === undefined ? undefined : this.#sessions.get(key);
    if (!session) {
      session = new EvalSession(h);
      if (key !== undefined) this.#sessions.set(key, session);
    }
    return session;
  }

  #evaluate(msg: Extract<ToWorker, { t: 'eval' }>): void {
    const handle = this.#handle;
    if (!handle?.ready) {
      send({ t: 'eval', id: msg.id, ok: false, text: 'the worker is still starting' });
      return;
    }
    this.#sessionFor(msg.session, handle).run(msg.code, msg.timeoutMs).then(
      (value) => send({ t: 'eval', id: msg.id, ok: true, ...describeValue(value, msg.session !== undefined) }),
      (err: unknown) =>
        send({ t: 'eval', id: msg.id, ok: false, text: err instanceof Error ? `${err.name}: ${err.message}` : String(err), incomplete: isIncompleteInput(msg.code, err) }),
    );
  }

  onMessage(msg: ToWorker): void {
    const handle = this.#handle;
    switch (msg.t) {
      case 'stage':
        this.#advance(msg.stage);
        break;
      case 'stop':
        this.#advance('draining');
        break;
      case 'level':
        if (isLevel(msg.level)) this.#control.level = msg.level;
        break;
      case 'eval':
        this.#evaluate(msg);
        break;
      case 'eval-end':
        this.#sessions.delete(msg.session);
        break;
      case 'status':
        send({
          t: 'status',
          id: msg.id,
          stage: handle ? (handle.ready ? handle.lifecycle.stage : 'starting') : 'starting',
          in_flight: handle?.lifecycle.inFlight ?? 0,
          rss: process.memoryUsage.rss(),
          uptime_s: Math.round(process.uptime()),
        });
        break;
      default:
        break;
    }
  }
}
