/**
 * The one place that listens to process signals: no other module of the node calls
 * `process.on('SIG…')`. The others register named handlers here (`signalRouter().on`), and this
 * module installs one listener per signal and calls the handlers of a signal in the order of
 * their owner in DISPATCH_ORDER (not the order they were registered in):
 *
 *   1. services   services.ts, the process's own services: ALRM toggles trace-level logging,
 *                 USR1 reopens a daemon's console.log
 *   2. single     a single-process node (services.ts): HUP reloads (or reopens the logs, or
 *                 replaces the node), USR2 starts a successor, WINCH/TTIN/TTOU are logged and
 *                 ignored (their default action would stop the node)
 *   3. master     a master (master.ts): HUP, WINCH, TTIN, TTOU, USR2 (its header has what each
 *                 does); ALRM passes the log level that `services` (1) has just set on to the workers
 *   4. shutdown   INT, TERM, QUIT: the staged shutdown below (`installSignalHandlers`, by node.ts
 *                 for a single-process node or master.ts for a master)
 *   5. worker     a worker (worker.ts) ignores INT, QUIT, HUP, USR2, WINCH, TTIN, TTOU and ALRM:
 *                 a terminal's signals reach the whole process group, and its master tells it
 *                 what to do over IPC
 *
 * It turns signals into requests and leaves what they do to the node.
 *
 * INT and TERM are staged (Adhearsion): each one moves one step further, the 1st to `draining`,
 * the 2nd to `rejecting`, the 3rd to `hanging-up`, the 4th to exiting at once. QUIT (unicorn's
 * graceful stop) jumps to `rejecting`; an INT/TERM after it goes on from there.
 */
import type { Stage } from '../apps/lifecycle.js';

/** What a shutdown signal asks for: a stage, or (`exit`) to exit at once. */
export type ShutdownRequest = { readonly step: number; readonly stage: Stage | 'exit' };

const STEPS: readonly (Stage | 'exit')[] = ['draining', 'rejecting', 'hanging-up', 'exit'];

/** The staged-shutdown state machine, apart from the process so it can be reasoned about alone. */
export class ShutdownSteps {
  #step = 0;

  get step(): number {
    return this.#step;
  }

  /** Records a signal and says what it asks for. */
  receive(signal: NodeJS.Signals): ShutdownRequest {
    this.#step = signal === 'SIGQUIT' ? Math.max(this.#step, 2) : Math.min(this.#step + 1, STEPS.length);
    return { step: this.#step, stage: STEPS[this.#step - 1]! };
  }
}

/** Who handles a signal; see the header for what each owner does. */
export type SignalOwner = 'services' | 'single' | 'master' | 'shutdown' | 'worker';

/** The handlers of one signal run in this order of their owners (registration order within one). */
export const DISPATCH_ORDER: readonly SignalOwner[] = ['services', 'single', 'master', 'shutdown', 'worker'];

interface Registered {
  readonly owner: SignalOwner;
  readonly name: string;
  readonly fn: (signal: NodeJS.Signals) => void;
}

/** The signal listeners of one process (or of a stand-in emitter, in tests). */
export class SignalRouter {
  readonly #target: NodeJS.Process;
  readonly #handlers = new Map<NodeJS.Signals, Registered[]>();
  readonly #listeners = new Map<NodeJS.Signals, () => void>();

  constructor(target: NodeJS.Process) {
    this.#target = target;
  }

  /** Registers `fn` (called `name`, for `handlers`) for `signal`; returns a function that removes it. */
  on(signal: NodeJS.Signals, owner: SignalOwner, name: string, fn: (signal: NodeJS.Signals) => void): () => void {
    let list = this.#handlers.get(signal);
    if (!list) {
      list = [];
      this.#handlers.set(signal, list);
      const listener = (): void => this.dispatch(signal);
      this.#listeners.set(signal, listener);
      this.#target.on(signal, listener);
    }
    const entry: Registered = { owner, name, fn };
    list.push(entry);
    // a stable sort: registration order stays within one owner
    list.sort((a, b) => DISPATCH_ORDER.indexOf(a.owner) - DISPATCH_ORDER.indexOf(b.owner));
    return () => this.#remove(signal, entry);
  }

  /** The handlers of `signal`, as `owner:name`, in the order they run. */
  handlers(signal: NodeJS.Signals): string[] {
    return (this.#handlers.get(signal) ?? []).map((h) => `${h.owner}:${h.name}`);
  }

  /** Runs the handlers of `signal` in DISPATCH_ORDER (what the process listener does). */
  dispatch(signal: NodeJS.Signals): void {
    for (const h of [...(this.#handlers.get(signal) ?? [])]) h.fn(signal);
  }

  #remove(signal: NodeJS.Signals, entry: Registered): void {
    const list = this.#handlers.get(signal);
    const at = list?.indexOf(entry) ?? -1;
    if (!list || at < 0) return;
    list.splice(at, 1);
    if (list.length > 0) return;
    // no handler left: the signal's default action is back
    this.#target.off(signal, this.#listeners.get(signal)!);
    this.#listeners.delete(signal);
    this.#handlers.delete(signal);
  }
}

const routers = new WeakMap<object, SignalRouter>();

/** The router of `target` (the process, unless a test gives a stand-in). */
export function signalRouter(target: NodeJS.Process = process): SignalRouter {
  let router = routers.get(target);
  if (!router) {
    router = new SignalRouter(target);
    routers.set(target, router);
  }
  return router;
}

/**
 * A graceful stop (`stop`, a console's exit, the handle's `stop`) takes the path of a TERM, so
 * it cannot race one: the staged shutdown above, and a program app's own TERM handler, hear it.
 */
export function stopAsTerm(): void {
  process.emit('SIGTERM', 'SIGTERM');
}

export interface SignalHandlers {
  /** INT, TERM or QUIT arrived; `request` is the step it moves the node to. */
  shutdown(request: ShutdownRequest, signal: NodeJS.Signals): void;
}

export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGQUIT'];

/** Installs the node's staged shutdown on INT, TERM and QUIT; returns a function that removes it. */
export function installSignalHandlers(handlers: SignalHandlers, target: NodeJS.Process = process): () => void {
  const steps = new ShutdownSteps();
  const router = signalRouter(target);
  const removers = SHUTDOWN_SIGNALS.map((signal) => router.on(signal, 'shutdown', 'staged shutdown', () => handlers.shutdown(steps.receive(signal), signal)));
  return () => {
    for (const remove of removers) remove();
  };
}
