/**
 * The expected errors of the node runtime (a bad environment, manifest or config; an app that
 * fails to start): one line that names what was wrong and the way out, no stack. Anything else
 * is a bug and is printed with its stack. Only `boot.ts` prints errors and picks exit codes.
 * (src/node ships inside releases and imports nothing from the toolchain, hence its own class.)
 */
export class BootError extends Error {
  /** Stable code: `EENV`, `EMANIFEST`, `ESYSCONFIG`, `EAPPCONFIG`, `ENODETYPE`, `EAPPSTART`. */
  readonly code: string;

  constructor(code: string, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BootError';
    this.code = code;
  }
}

export function isBootError(err: unknown): err is BootError {
  return err instanceof BootError;
}
