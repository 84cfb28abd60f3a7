/**
 * The daemon's console log, `RUNNER_LOG_DIR/<node>/console.log` (SPEC §7): everything the node
 * prints, rotated by size with a fixed number of generations (`console.log.1` is the newest,
 * `console.log.<generations>` the oldest, the one after that is dropped), and reopened on USR1 /
 * `reopen_logs` after an external rotation (logrotate's rename + signal).
 *
 * Writes are synchronous (`fs.writeSync` on an O_APPEND descriptor), so a chunk goes wholly to
 * the file that was current when it was written: rotation and reopening never lose or split a
 * line, and a crash right after a `console.log` still leaves the line on disk. A chunk is never
 * split across files either, so a file exceeds `maxBytes` only when a single chunk is larger.
 *
 * One `ConsoleLog` per file, in one process (the master): sizes are tracked in memory, so two
 * writers rotating the same file would shift each other's generations.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BootError } from './errors.js';
import type { LogSink } from './log.js';

export interface ConsoleLogOptions {
  /** The log file, e.g. `RUNNER_LOG_DIR/<node>/console.log`; its directory is created (0750). */
  file: string;
  /** Rotate before a write would take the file past this many bytes; 0 = never rotate by size. */
  maxBytes: number;
  /** Rotated files kept: `<file>.1` (newest) to `<file>.<generations>` (oldest); at least 1. */
  generations: number;
}

export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_GENERATIONS = 5;
const MAX_GENERATIONS = 1000;

export type ConsoleSubscriber = (chunk: Buffer) => void;

export class ConsoleLog {
  readonly file: string;
  readonly maxBytes: number;
  readonly generations: number;
  #fd: number | undefined;
  #size: number;
  /** After a failed rotation (say, a read-only directory), try again only this much later. */
  #retryRotationAt = 0;
  readonly #subscribers = new Set<ConsoleSubscriber>();
  #notifying = false;

  constructor(o: ConsoleLogOptions) {
    if (!Number.isSafeInteger(o.maxBytes) || o.maxBytes < 0) {
      throw new RangeError(`ConsoleLog: maxBytes must be a whole number of bytes >= 0, got ${String(o.maxBytes)}`);
    }
    if (!Number.isSafeInteger(o.generations) || o.generations < 1 || o.generations > MAX_GENERATIONS) {
      throw new RangeError(`ConsoleLog: generations must be a whole number from 1 to ${MAX_GENERATIONS}, got ${String(o.generations)}`);
    }
    this.file = path.resolve(o.file);
    this.maxBytes = o.maxBytes;
    this.generations = o.generations;
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o750 });
    this.#fd = openAppend(this.file);
    this.#size = fs.fstatSync(this.#fd).size;
  }

  /** Bytes in the current file, as tracked: its size at open plus what this object wrote. */
  get size(): number {
    return this.#size;
  }

  get closed(): boolean {
    return this.#fd === undefined;
  }

  /**
   * Appends `chunk` (a string is UTF-8), rotating first when it would take the file past
   * `maxBytes`, then hands it to every subscriber. A failed rotation is not fatal: the chunk
   * goes to the current file and rotation is tried again later. A failed write (ENOSPC)
   * throws, after the subscribers got the chunk. After `close()` chunks are dropped.
   */
  write(chunk: string | Uint8Array): void {
    if (this.#fd === undefined) return;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk); // a copy: subscribers may keep it
    if (buf.length === 0) return;
    let failure: unknown;
    try {
      if (this.#mustRotate(buf.length)) this.#rotateOrPostpone();
      writeAll(this.#fd, buf);
      this.#size += buf.length;
    } catch (err) {
      failure = err;
    }
    this.#notify(buf);
    if (failure !== undefined) throw failure;
  }

  /**
   * Opens the path anew (append) and writes there from now on: for logrotate's rename + USR1.
   * The new descriptor is open before the old one is closed, so no write falls between them.
   * If the path cannot be opened the old file stays in use and the error is thrown.
   * After `close()` this does nothing.
   */
  reopen(): void {
    const old = this.#fd;
    if (old === undefined) return;
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o750 }); // someone may have removed it
    const fd = openAppend(this.file);
    this.#fd = fd;
    this.#size = fs.fstatSync(fd).size;
    this.#retryRotationAt = 0;
    fs.closeSync(old);
  }

  /**
   * Live output (for `attach`): `fn` gets every chunk written from now on. A subscriber that
   * throws is removed. Writes made from inside a subscriber go to the file but are not passed
   * to subscribers again (no feedback loop when stdio is captured). Returns the unsubscribe.
   */
  subscribe(fn: ConsoleSubscriber): () => void {
    this.#subscribers.add(fn);
    return () => {
      this.#subscribers.delete(fn);
    };
  }

  /** Closes the file and drops every subscriber; later writes are ignored. Idempotent. */
  close(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    this.#subscribers.clear();
    fs.closeSync(fd);
  }

  #mustRotate(incoming: number): boolean {
    return this.maxBytes > 0 && this.#size > 0 && this.#size + incoming > this.maxBytes && this.#size >= this.#retryRotationAt;
  }

  #rotateOrPostpone(): void {
    try {
      this.#rotate();
      this.#retryRotationAt = 0;
    } catch {
      this.#retryRotationAt = this.#size + this.maxBytes;
    }
  }

  /** `<file>.{N-1}` -> `.N` ... `<file>` -> `.1` (renaming over `.N` drops the oldest), then a fresh file. */
  #rotate(): void {
    const fd = this.#fd as number;
    // Renamed away by logrotate and not reopened yet: the path is not our file any more (it is
    // missing, or logrotate's `create` made a new one). Shifting generations now would rename
    // logrotate's files; writing to the path again is all that is needed.
    if (!isSameFile(fd, this.file)) {
      this.reopen();
      return;
    }
    for (let i = this.generations - 1; i >= 1; i--) renameIfExists(`${this.file}.${i}`, `${this.file}.${i + 1}`);
    fs.renameSync(this.file, `${this.file}.1`);
    const fresh = openAppend(this.file);
    this.#fd = fresh;
    this.#size = fs.fstatSync(fresh).size;
    fs.closeSync(fd);
  }

  #notify(buf: Buffer): void {
    if (this.#notifying || this.#subscribers.size === 0) return;
    this.#notifying = true;
    try {
      for (const fn of [...this.#subscribers]) {
        try {
          fn(buf);
        } catch {
          this.#subscribers.delete(fn);
        }
      }
    } finally {
      this.#notifying = false;
    }
  }
}

/**
 * Routes `process.stdout.write` and `process.stderr.write` (and so `console.*`) into `log`.
 * The replacement keeps the stream signature `(chunk, encoding?, callback?)`: a string chunk is
 * decoded with `encoding` (default UTF-8), the callback is called asynchronously (with the
 * write error, if any), and the return value is always `true` (the write is already done).
 * A write error without a callback is swallowed: a full disk must not crash the node through
 * its own `console.log`. Returns the restore function (idempotent); if something wrapped the
 * streams after us, it is left in place and our layer just passes writes through.
 *
 * Output written by Node itself to fd 1/2 without going through these streams (the report of
 * an uncaught exception, a fatal error) does not pass here: point the daemon's fd 1/2 at the
 * same file too.
 */
export function captureStdio(log: ConsoleLog): () => void {
  const restores = [redirectWhenUsed('stdout', log), redirectWhenUsed('stderr', log)];
  return () => {
    for (const restore of restores) restore();
  };
}

/**
 * Redirects `process[name]` once something first reads it. Node makes the stream on first use,
 * and making it loads node:stream and more (a few ms of every daemon's start, for a stream that
 * a quiet node never uses).
 */
function redirectWhenUsed(name: 'stdout' | 'stderr', log: ConsoleLog): () => void {
  const desc = Object.getOwnPropertyDescriptor(process, name);
  if (!desc?.get || !desc.configurable) return redirect(process[name], log);
  const getter = desc.get;
  let restore: (() => void) | undefined;
  let active = true;
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: desc.enumerable,
    get() {
      const stream = getter.call(process) as NodeJS.WriteStream;
      if (active && !restore) restore = redirect(stream, log);
      return stream;
    },
  });
  return () => {
    active = false;
    restore?.();
    Object.defineProperty(process, name, desc);
  };
}

/** A log sink into the console log itself (the node's own lines, as they are after a reopen). */
export function consoleLogSink(log: ConsoleLog): LogSink {
  return {
    write(_level, line) {
      log.write(`${line}\n`);
    },
  };
}

type WriteCallback = (err?: Error | null) => void;

function redirect(stream: NodeJS.WriteStream, log: ConsoleLog): () => void {
  const own = Object.getOwnPropertyDescriptor(stream, 'write');
  const original = stream.write;
  let active = true;
  function write(this: unknown, ...args: unknown[]): boolean {
    if (!active) return (original as (...a: unknown[]) => boolean).apply(stream, args);
    const [chunk] = args;
    let [, encoding, callback] = args;
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    const buf = toBuffer(chunk, encoding);
    let error: Error | null = null;
    try {
      log.write(buf);
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
    }
    if (typeof callback === 'function') process.nextTick(callback as WriteCallback, error);
    return true;
  }
  stream.write = write as NodeJS.WriteStream['write'];
  return () => {
    if (!active) return;
    active = false;
    if (stream.write !== write) return;
    if (own) Object.defineProperty(stream, 'write', own);
    else delete (stream as { write?: unknown }).write;
  };
}

/** What a stream's `write` accepts, as it checks it: a string (in `encoding`) or bytes. */
function toBuffer(chunk: unknown, encoding: unknown): Uint8Array {
  if (typeof chunk === 'string') {
    const enc = encoding === undefined || encoding === null ? 'utf8' : String(encoding);
    if (!Buffer.isEncoding(enc)) throw new TypeError(`Unknown encoding: ${enc}`);
    return Buffer.from(chunk, enc);
  }
  if (chunk instanceof Uint8Array) return chunk;
  throw new TypeError(`The "chunk" argument must be of type string or an instance of Buffer or Uint8Array. Received ${describe(chunk)}`);
}

function describe(value: unknown): string {
  return value === null ? 'null' : typeof value;
}

/**
 * The console log's rotation settings from the environment: `RUNNER_LOG_MAX_BYTES` (bytes, or a
 * number with K, M or G in powers of 1024: 10485760, 10M, 512K, 1G; 0 = never rotate by size)
 * and `RUNNER_LOG_GENERATIONS` (1 to 1000). Unset or empty -> `defaults` -> 10 MiB and 5.
 * An invalid value is a `BootError` (`EENV`) naming the variable and what it accepts.
 */
export function logSettings(
  env: NodeJS.ProcessEnv,
  defaults: { maxBytes?: number; generations?: number } = {},
): { maxBytes: number; generations: number } {
  return {
    maxBytes: parseMaxBytes(env.RUNNER_LOG_MAX_BYTES) ?? defaults.maxBytes ?? DEFAULT_LOG_MAX_BYTES,
    generations: parseGenerations(env.RUNNER_LOG_GENERATIONS) ?? defaults.generations ?? DEFAULT_LOG_GENERATIONS,
  };
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

function parseMaxBytes(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  // 10M, 10m, 10MB, 10MiB, 10 M, 512K, 1G, 100B, 10485760
  const m = /^(\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(raw.trim());
  const bytes = m ? Number(m[1]) * (UNITS[(m[2] ?? '').toLowerCase()] as number) : NaN;
  if (!Number.isSafeInteger(bytes)) {
    throw new BootError(
      'EENV',
      `RUNNER_LOG_MAX_BYTES=${JSON.stringify(raw)} is not a size; use a number of bytes or a number with K, M or G (powers of 1024), e.g. 10485760, 10M, 512K, 1G; 0 never rotates by size`,
    );
  }
  return bytes;
}

function parseGenerations(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = /^\d{1,4}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!(n >= 1 && n <= MAX_GENERATIONS)) {
    throw new BootError(
      'EENV',
      `RUNNER_LOG_GENERATIONS=${JSON.stringify(raw)} is not a number of rotated files to keep; use a whole number from 1 to ${MAX_GENERATIONS} (default ${DEFAULT_LOG_GENERATIONS})`,
    );
  }
  return n;
}

function openAppend(file: string): number {
  return fs.openSync(file, 'a', 0o640);
}

function writeAll(fd: number, buf: Buffer): void {
  let offset = 0;
  while (offset < buf.length) offset += fs.writeSync(fd, buf, offset, buf.length - offset);
}

function isSameFile(fd: number, file: string): boolean {
  let onDisk: fs.Stats;
  try {
    onDisk = fs.statSync(file);
  } catch {
    return false;
  }
  const open = fs.fstatSync(fd);
  return open.ino === onDisk.ino && open.dev === onDisk.dev;
}

function renameIfExists(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
