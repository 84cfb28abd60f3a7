/**
 * The one place that listens to process signals. It turns signals into requests
 * (a shutdown step now; reload, reopen logs, re-exec, worker counts later) and leaves what they
 * do to the node.
 *
 * INT and TERM are staged (Adhearsion): each one moves one step further, the 1st to `draining`,
 * the 2nd to `rejecting`, the 3rd to `hanging-up`, the 4th to exiting at once. QUIT (unicorn's
 * graceful stop) jumps to `rejecting`; an INT/TERM after it goes on from there.
 */
import type { Stage } from './lifecycle.js';

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

export interface SignalHandlers {
  /** INT, TERM or QUIT arrived; `request` is the step it moves the node to. */
  shutdown(request: ShutdownRequest, signal: NodeJS.Signals): void;
}

export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGQUIT'];

/** Installs the node's signal listeners; returns a function that removes them. */
export function installSignalHandlers(handlers: SignalHandlers, target: NodeJS.Process = process): () => void {
  const steps = new ShutdownSteps();
  const listeners = SHUTDOWN_SIGNALS.map((signal) => {
    const listener = (): void => handlers.shutdown(steps.receive(signal), signal);
    target.on(signal, listener);
    return [signal, listener] as const;
  });
  return () => {
    for (const [signal, listener] of listeners) target.off(signal, listener);
  };
}
