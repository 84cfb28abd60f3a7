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
 */
import { routeListens, type RawHandle } from './listeners.js';
import type { Stage } from './lifecycle.js';
import { describeValue, EvalSession, isIncompleteInput } from './evaluate.js';
import { collectBootGarbage, describeBootGc } from './heap.js';
import { createLogger, isLevel, type LogControl } from './log.js';
import { planNode, runForeground, type NodeHandle } from './node.js';
import { readLaunchEnv } from './launch-env.js';

export type ToWorker =
  | { t: 'listen-ok'; id: number }
  | { t: 'listen-err'; id: number; message: string; code?: string }
  | { t: 'stage'; stage: Stage | 'exit' }
  | { t: 'stop' }
  | { t: 'status'; id: number }
  | { t: 'level'; level: string }
  | { t: 'eval'; id: number; code: string; session?: string; timeoutMs?: number }
  | { t: 'eval-end'; session: string };

export type FromWorker =
  | { t: 'listen'; id: number; host: string; port: number; ipv6Only?: boolean }
  | { t: 'ready' }
  | { t: 'failed'; message: string }
  | { t: 'status'; id: number; stage: string; in_flight: number; rss: number; uptime_s: number }
  | { t: 'eval'; id: number; ok: boolean; text: string; undefined?: boolean; incomplete?: boolean };

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
  const index = Number(env.NODEREL_WORKER_INDEX ?? 0);
  // Lost master: nobody can stop us any more, and nobody would see our output. Leave now.
  process.on('disconnect', () => process.exit(1));
  for (const signal of ['SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR2', 'SIGWINCH', 'SIGTTIN', 'SIGTTOU', 'SIGALRM'] as const) {
    process.on(signal, () => {});
  }
  installListenBroker();
  const plan = planNode(readLaunchEnv(env), env);
  let handle: NodeHandle | undefined;
  /** A stage the master sent before the node existed (a stop while booting): applied then. */
  let early: Stage | 'exit' | undefined;
  const advance = (stage: Stage | 'exit'): void => {
    if (handle) handle.advance(stage);
    else early = stage;
  };
  // a REPL's evaluation session lives here as long as the REPL is open; an eval has its own
  const sessions = new Map<string, EvalSession>();
  const sessionFor = (key: string | undefined, h: NodeHandle): EvalSession => {
    let session = key === undefined ? undefined : sessions.get(key);
    if (!session) {
      session = new EvalSession(h);
      if (key !== undefined) sessions.set(key, session);
    }
    return session;
  };
  process.on('message', (msg: ToWorker) => {
    switch (msg.t) {
      case 'stage':
        advance(msg.stage);
        break;
      case 'stop':
        advance('draining');
        break;
      case 'level':
        if (isLevel(msg.level)) control.level = msg.level;
        break;
      case 'eval':
        if (!handle?.ready) {
          send({ t: 'eval', id: msg.id, ok: false, text: 'the worker is still starting' });
          break;
        }
        sessionFor(msg.session, handle).run(msg.code, msg.timeoutMs).then(
          (value) => send({ t: 'eval', id: msg.id, ok: true, ...describeValue(value, msg.session !== undefined) }),
          (err: unknown) =>
            send({ t: 'eval', id: msg.id, ok: false, text: err instanceof Error ? `${err.name}: ${err.message}` : String(err), incomplete: isIncompleteInput(msg.code, err) }),
        );
        break;
      case 'eval-end':
        sessions.delete(msg.session);
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
  });
  // The runtime's boot garbage goes before the apps start (heap.ts): theirs is left to V8, as
  // under bare node, and no request waits on the pause.
  const logScope = `${plan.info.name}/w${index}`;
  const gc = collectBootGarbage(env);
  if (gc) createLogger(logScope, control).debug(describeBootGc(gc));
  const code = await runForeground(plan, control, {
    signals: false,
    processTitle: `${plan.nodeType.processName} worker[${index}]`,
    logScope,
    onStarting: (h) => {
      handle = h;
      if (early !== undefined) queueMicrotask(() => h.advance(early!));
    },
    onReady: () => send({ t: 'ready' }),
    onStartFailed: (message) => send({ t: 'failed', message }),
  });
  return code;
}
