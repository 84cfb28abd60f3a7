/**
 * The node's lifecycle: the stage every app can read and watch, and the count of
 * in-flight work (calls, requests, jobs) the apps report with `track()`. Stages only move
 * forward: running -> draining -> rejecting -> hanging-up -> stopping. What each stage means
 * for an app:
 *   draining    keep taking work; the node exits once nothing is in flight
 *   rejecting   refuse new work, finish what is in flight
 *   hanging-up  end in-flight work now (hang up calls, abort jobs)
 *   stopping    the apps are being stopped, in reverse start order
 * Who moves the stage (signals, later the control socket) is not this module's business.
 */

export const STAGES = ['running', 'draining', 'rejecting', 'hanging-up', 'stopping'] as const;
export type Stage = (typeof STAGES)[number];

export type StageListener = (stage: Stage, previous: Stage) => void;

/** What apps see as `ctx.lifecycle`. */
export interface LifecycleView {
  readonly stage: Stage;
  readonly inFlight: number;
  /** Calls `fn` on every stage change; returns a function that unsubscribes it. */
  onStage(fn: StageListener): () => void;
  /** Counts one piece of work in flight; call the returned `done()` when it ends (extra calls are ignored). */
  track(): () => void;
}

export function stageIndex(stage: Stage): number {
  return STAGES.indexOf(stage);
}

export class Lifecycle implements LifecycleView {
  #stage: Stage = 'running';
  #inFlight = 0;
  readonly #stageListeners = new Set<StageListener>();
  readonly #idleListeners = new Set<() => void>();
  readonly #onListenerError: (err: unknown) => void;

  /** `onListenerError` receives what a listener threw; the other listeners still run. */
  constructor(onListenerError: (err: unknown) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  get stage(): Stage {
    return this.#stage;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  onStage(fn: StageListener): () => void {
    this.#stageListeners.add(fn);
    return () => void this.#stageListeners.delete(fn);
  }

  /** Calls `fn` each time the in-flight count drops to 0. */
  onIdle(fn: () => void): () => void {
    this.#idleListeners.add(fn);
    return () => void this.#idleListeners.delete(fn);
  }

  track(): () => void {
    this.#inFlight += 1;
    let finished = false;
    return () => {
      if (finished) return;
      finished = true;
      this.#inFlight -= 1;
      if (this.#inFlight === 0) this.#emit([...this.#idleListeners], (fn) => fn());
    };
  }

  /** Moves to `stage` if it is further along than the current one; true when it moved. */
  advance(stage: Stage): boolean {
    if (stageIndex(stage) <= stageIndex(this.#stage)) return false;
    const previous = this.#stage;
    this.#stage = stage;
    this.#emit([...this.#stageListeners], (fn) => fn(stage, previous));
    return true;
  }

  /** The object handed to apps: everything but `advance` and `onIdle`. */
  view(): LifecycleView {
    const self = this;
    return {
      get stage() {
        return self.stage;
      },
      get inFlight() {
        return self.inFlight;
      },
      onStage: (fn) => self.onStage(fn),
      track: () => self.track(),
    };
  }

  #emit<T>(listeners: T[], call: (fn: T) => void): void {
    for (const fn of listeners) {
      try {
        call(fn);
      } catch (err) {
        this.#onListenerError(err);
      }
    }
  }
}
