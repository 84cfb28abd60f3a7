/**
 * Two kinds of error: an expected one, a `NoderelError` with a stable code,
 * one line that names the file/line/key, and the way out; and a bug (anything else),
 * printed with its stack. Only the CLI entry point prints errors and picks the exit code.
 */
export class NoderelError extends Error {
  /** Stable code, e.g. `ECONFIG`, `EVMARGS`, `ERUNTIME`. */
  readonly code: string;
  /** What to do about it; appended to the message when printed. */
  readonly hint?: string;
  /** Further problems reported in the same run (validation collects them all). */
  readonly problems: readonly string[];

  constructor(code: string, message: string, opts: { hint?: string; problems?: readonly string[]; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'NoderelError';
    this.code = code;
    this.hint = opts.hint;
    this.problems = opts.problems ?? [];
  }

  /** The text the CLI prints: `message (hint)` then one line per extra problem. */
  format(): string {
    const head = this.hint ? `${this.message}; ${this.hint}` : this.message;
    return [head, ...this.problems.map((p) => `  ${p}`)].join('\n');
  }
}

export function isNoderelError(err: unknown): err is NoderelError {
  return err instanceof NoderelError;
}

/** A list of `path: message` problems gathered by a validator; throws them as one error. */
export class Problems {
  readonly list: string[] = [];
  add(path: string, message: string): void {
    this.list.push(path ? `${path}: ${message}` : message);
  }
  get size(): number {
    return this.list.length;
  }
  throwIfAny(code: string, what: string): void {
    if (this.list.length === 0) return;
    if (this.list.length === 1) throw new NoderelError(code, this.list[0]!);
    throw new NoderelError(code, `${what}: ${this.list.length} problems`, { problems: this.list });
  }
}
