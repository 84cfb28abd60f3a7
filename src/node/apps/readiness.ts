/**
 * How the node learns that a `program` app (a plain Node program, run in this process) is
 * ready when its output matches a pattern (Servolux's `look_for`); it stops when its AbortSignal
 * fires, and the start timeout lives with the caller. Port readiness (a server of this process
 * listens on the port) is in apps.ts, beside the other listen hooks.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/** How often a daemon's console.log is read back for a readiness pattern written to fd 1. */
const POLL_MS = 50;

/** How much recent output a pattern is matched against (it may span writes and lines). */
const OUTPUT_WINDOW = 64 * 1024;

export interface OutputWatch {
  /** Resolves on the first match; rejects when the signal aborts first. */
  readonly matched: Promise<void>;
}

type Write = NodeJS.WriteStream['write'];

/**
 * Watches what the process writes to `streams` (default stdout and stderr) for `pattern`,
 * passing every write through unchanged. The wrappers are removed on match or abort.
 */
export function watchOutput(
  pattern: RegExp,
  signal: AbortSignal,
  streams: readonly NodeJS.WriteStream[] = [process.stdout, process.stderr],
): OutputWatch {
  let window = '';
  let active = true;
  let onMatch: () => void = () => {};
  const restores: (() => void)[] = [];
  const finish = (): void => {
    active = false;
    for (const restore of restores) restore();
  };

  const matched = new Promise<void>((resolve, reject) => {
    onMatch = () => {
      finish();
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = (): void => {
      finish();
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
  });

  if (active) {
    for (const stream of streams) {
      const original = stream.write;
      const decoder = new StringDecoder('utf8');
      const wrapper = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
        if (active) {
          window += typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? decoder.write(Buffer.from(chunk)) : '';
          if (window.length > OUTPUT_WINDOW) window = window.slice(-OUTPUT_WINDOW);
          if (pattern.test(window)) onMatch();
        }
        return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      } as Write;
      stream.write = wrapper;
      // Put the original back unless someone wrapped on top of us (then ours just passes through).
      restores.push(() => {
        if (stream.write === wrapper) stream.write = original;
      });
    }
  }
  return { matched };
}

/**
 * The same pattern in what the process writes to fd 1 itself, bypassing process.stdout (pino's
 * `destination(1)`, sonic-boom, `fs.writeSync(1, ...)`), where fd 1 is a file: a daemon's, which
 * the launcher points at console.log. Read back through /proc/self/fd/1 (the file fd 1 names,
 * even after a rename), from its size now, every POLL_MS. Undefined where fd 1 is no file (a
 * terminal or a pipe: reading it would take the output from its reader) or /proc is missing.
 */
export function watchFd1File(pattern: RegExp, signal: AbortSignal): Promise<void> | undefined {
  let fd: number;
  let offset: number;
  try {
    const st = fstatSync(1);
    if (!st.isFile()) return undefined;
    fd = openSync('/proc/self/fd/1', 'r');
    offset = st.size;
  } catch {
    return undefined;
  }
  return new Promise<void>((resolve, reject) => {
    const decoder = new StringDecoder('utf8');
    const buf = Buffer.alloc(64 * 1024);
    let window = '';
    const done = (err?: unknown): void => {
      clearInterval(timer);
      signal.removeEventListener('abort', onAbort);
      closeSync(fd);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = (): void => done(signal.reason);
    const timer = setInterval(() => {
      try {
        for (let n = readSync(fd, buf, 0, buf.length, offset); n > 0; n = readSync(fd, buf, 0, buf.length, offset)) {
          offset += n;
          window += decoder.write(buf.subarray(0, n));
          if (window.length > OUTPUT_WINDOW) window = window.slice(-OUTPUT_WINDOW);
          if (pattern.test(window)) return done();
        }
      } catch {
        // the file went away: the other watch (process.stdout) still runs
      }
    }, POLL_MS);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
