/**
 * The daemon's console log, `RUNNER_LOG_DIR/<node>/console.log`: everything the node
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
 *
 * Logging never fails the caller: a chunk that cannot be written (a full disk: ENOSPC, EIO, ...)
 * is dropped and its lines counted (`dropped`, shown by `status`); once writing works again, a
 * line saying how many were lost, why and when goes into the log before anything else. A timer
 * keeps trying meanwhile, so the note appears once space returns even on a quiet node.
 *
 * Files are created with one mode (`RUNNER_LOG_MODE`, default 0640: never world-readable, logs
 * carry secrets), and directories with that mode plus search where it can read (0750).
 */
import { chmodSync, closeSync, fchmodSync, fstatSync, mkdirSync, openSync, renameSync, type Stats, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { BootError } from '../errors.js';
import { readLaunchSettings } from '../release/launch-env.js';
import { isoTime, type LogSink } from './log.js';

export interface ConsoleLogOptions {
  /** The log file, e.g. `RUNNER_LOG_DIR/<node>/console.log`; its directory is created (0750 for mode 0640). */
  file: string;
  /** Rotate before a write would take the file past this many bytes; 0 = never rotate by size. */
  maxBytes: number;
  /** Rotated files kept: `<file>.1` (newest) to `<file>.<generations>` (oldest); at least 1. */
  generations: number;
  /** The mode of the log files (default 0640); directories get it plus x where it has r (0750). */
  mode?: number;
  /** How often to retry writing the note about dropped lines on a quiet node; default 1000 ms. */
  retryMs?: number;
}

/** What could not be written: `status` shows it. */
export interface DroppedLines {
  /** Lines dropped since the node started. */
  lines: number;
  /** Of those, lines the log has not been told about yet (the disk is still full). */
  unreported: number;
  /** The last write error, as `CODE: message`. */
  lastError?: string;
}

export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_GENERATIONS = 5;
export const DEFAULT_LOG_MODE = 0o640;
const MAX_GENERATIONS = 1000;

export type ConsoleSubscriber = (chunk: Buffer) => void;

export class ConsoleLog {
  readonly file: string;
  readonly maxBytes: number;
  readonly generations: number;
  readonly mode: number;
  readonly dirMode: number;
  #fd: number | undefined;
  #size: number;
  /** After a failed rotation (say, a read-only directory), try again only this much later. */
  #retryRotationAt = 0;
  readonly #subscribers = new Set<ConsoleSubscriber>();
  #notifying = false;
  #dropped = 0;
  #unreported = 0;
  #firstUnreportedAt = 0;
  #lastError: string | undefined;
  /** The last failed write left part of a line in the file: the note starts on a line of its own. */
  #partial = false;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #retryMs: number;

  constructor(o: ConsoleLogOptions) {
    if (!Number.isSafeInteger(o.maxBytes) || o.maxBytes < 0) {
      throw new RangeError(`ConsoleLog: maxBytes must be a whole number of bytes >= 0, got ${String(o.maxBytes)}`);
    }
    if (!Number.isSafeInteger(o.generations) || o.generations < 1 || o.generations > MAX_GENERATIONS) {
      throw new RangeError(`ConsoleLog: generations must be a whole number from 1 to ${MAX_GENERATIONS}, got ${String(o.generations)}`);
    }
    this.file = resolve(o.file);
    this.maxBytes = o.maxBytes;
    this.generations = o.generations;
    this.mode = (o.mode ?? DEFAULT_LOG_MODE) & 0o777;
    this.dirMode = dirModeOf(this.mode);
    this.#retryMs = o.retryMs ?? 1000;
    this.#mkdir();
    this.#fd = this.#open();
    this.#size = fstatSync(this.#fd).size;
  }

  /** Lines that could not be written (a full disk), and the last error. */
  get dropped(): DroppedLines {
    return { lines: this.#dropped, unreported: this.#unreported, ...(this.#lastError ? { lastError: this.#lastError } : {}) };
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
   * goes to the current file and rotation is tried again later. Never throws: a failed write
   * (ENOSPC) drops the chunk and counts its lines (`dropped`); the subscribers get it all the
   * same. After `close()` chunks are dropped.
   */
  write(chunk: string | Uint8Array): void {
    if (this.#fd === undefined) return;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk); // a copy: subscribers may keep it
    if (buf.length === 0) return;
    if (this.#unreported === 0 || this.#reportDropped()) this.#append(buf);
    else this.#drop(buf);
    this.#notify(buf);
  }

  /** Writes `buf` (rotating first if due); on failure counts it as dropped. True when written. */
  #append(buf: Buffer): boolean {
    const fd = this.#fd;
    if (fd === undefined) return false;
    try {
      if (this.#mustRotate(buf.length)) this.#rotateOrPostpone();
    } catch {
      // never fatal: the chunk goes to the current file
    }
    let written = 0;
    try {
      written = writeAll(this.#fd as number, buf);
      this.#size += written;
      this.#partial = false;
      return true;
    } catch (err) {
      written = (err as { written?: number }).written ?? 0;
      this.#size += written;
      if (written > 0) this.#partial = buf[written - 1] !== 0x0a;
      this.#drop(buf, err);
      return false;
    }
  }

  #drop(buf: Buffer, err?: unknown): void {
    let lines = 0;
    for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) lines++;
    if (buf[buf.length - 1] !== 0x0a) lines++;
    if (this.#unreported === 0) this.#firstUnreportedAt = Date.now();
    this.#dropped += lines;
    this.#unreported += lines;
    if (err !== undefined) {
      this.#lastError = describeWriteError(err);
    }
    if (this.#retryTimer === undefined && this.#retryMs > 0) {
      this.#retryTimer = setInterval(() => {
        if (this.#fd === undefined || this.#unreported === 0 || this.#reportDropped()) this.#stopRetrying();
      }, this.#retryMs);
      this.#retryTimer.unref();
    }
  }

  /** Writes the note about the lines dropped so far; true when it is in the log. */
  #reportDropped(): boolean {
    const n = this.#unreported;
    const note =
      `${this.#partial ? '\n' : ''}${isoTime(Date.now())} warn [console.log] ${n} log line${n === 1 ? '' : 's'} could not be written to ${this.file} ` +
      `since ${isoTime(this.#firstUnreportedAt)} (${this.#lastError ?? 'write failed'}) and ${n === 1 ? 'is' : 'are'} lost\n`;
    const fd = this.#fd;
    if (fd === undefined) return false;
    try {
      if (this.#mustRotate(note.length)) this.#rotateOrPostpone();
    } catch {
      // as in #append
    }
    try {
      this.#size += writeAll(this.#fd as number, Buffer.from(note, 'utf8'));
    } catch (err) {
      this.#size += (err as { written?: number }).written ?? 0;
      this.#lastError = describeWriteError(err);
      return false;
    }
    this.#partial = false;
    this.#unreported = 0;
    this.#stopRetrying();
    return true;
  }

  #stopRetrying(): void {
    if (this.#retryTimer === undefined) return;
    clearInterval(this.#retryTimer);
    this.#retryTimer = undefined;
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
    this.#mkdir(); // someone may have removed it
    const fd = this.#open();
    this.#fd = fd;
    this.#size = fstatSync(fd).size;
    this.#retryRotationAt = 0;
    closeSync(old);
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
    this.#stopRetrying();
    closeSync(fd);
  }

  /** The log's directory, created with `dirMode` (whatever the umask says) when missing. */
  #mkdir(): void {
    const dir = dirname(this.file);
    const st = statSync(dir, { throwIfNoEntry: false });
    if (st) {
      // one made before the log mode was (0755): it loses what the mode does not give
      const extra = st.mode & 0o777 & ~this.dirMode;
      if (extra) {
        try {
          chmodSync(dir, st.mode & 0o7777 & ~extra);
        } catch {
          // not ours to change
        }
      }
      return;
    }
    const first = mkdirSync(dir, { recursive: true, mode: this.dirMode });
    // every directory mkdir made gets the mode (the umask may have taken bits the mode gives)
    for (let d = dir; first !== undefined && d.length >= first.length; d = dirname(d)) {
      try {
        chmodSync(d, this.dirMode);
      } catch {
        // not ours to change
      }
    }
  }

  /** Opens the file for appending, in `mode`: one mode for the first file, reopened and rotated ones. */
  #open(): number {
    const fd = openSync(this.file, 'a', this.mode);
    try {
      if ((fstatSync(fd).mode & 0o777) !== this.mode) fchmodSync(fd, this.mode);
    } catch {
      // another user's file: it keeps its mode
    }
    return fd;
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
    renameSync(this.file, `${this.file}.1`);
    const fresh = this.#open();
    this.#fd = fresh;
    this.#size = fstatSync(fresh).size;
    closeSync(fd);
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
 * `RUNNER_LOG_GENERATIONS` (1 to 1000) and `RUNNER_LOG_MODE` (the files' octal mode, default
 * 0640; the owner must be able to read and write). Unset or empty -> `defaults` -> 10 MiB, 5 and
 * 0640. An invalid value is a `BootError` (`EENV`) naming the variable and what it accepts.
 */
export function logSettings(
  env: NodeJS.ProcessEnv,
  defaults: { maxBytes?: number; generations?: number } = {},
): { maxBytes: number; generations: number; mode: number } {
  const given = readLaunchSettings(env).logRotation;
  return {
    maxBytes: parseMaxBytes(given.maxBytes) ?? defaults.maxBytes ?? DEFAULT_LOG_MAX_BYTES,
    generations: parseGenerations(given.generations) ?? defaults.generations ?? DEFAULT_LOG_GENERATIONS,
    mode: parseMode(given.mode) ?? DEFAULT_LOG_MODE,
  };
}

function parseMode(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = /^0?[0-7]{3}$/.test(raw.trim()) ? parseInt(raw.trim(), 8) : NaN;
  if (!((n & 0o600) === 0o600)) {
    throw new BootError(
      'EENV',
      `RUNNER_LOG_MODE=${JSON.stringify(raw)} is not a mode for the log files; use three octal digits the owner can read and write with, e.g. 0640 (the default) or 0600`,
    );
  }
  return n;
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

/** Writes all of `buf`; returns its length. A failure carries the bytes written before it (`written`). */
function writeAll(fd: number, buf: Buffer): number {
  let offset = 0;
  try {
    while (offset < buf.length) offset += writeSync(fd, buf, offset, buf.length - offset);
  } catch (err) {
    if (err && typeof err === 'object') Object.assign(err, { written: offset });
    throw err;
  }
  return offset;
}

/** `ENOSPC: no space left on device, write`: the code first, once. */
function describeWriteError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const message = e instanceof Error ? e.message : String(err);
  return e.code && !message.startsWith(e.code) ? `${e.code}: ${message}` : message;
}

/** A directory's mode for files of `mode`: search (x) wherever it can read (0640 -> 0750). */
export function dirModeOf(mode: number): number {
  return (mode | ((mode & 0o444) >> 2)) & 0o777;
}

function isSameFile(fd: number, file: string): boolean {
  let onDisk: Stats;
  try {
    onDisk = statSync(file);
  } catch {
    return false;
  }
  const open = fstatSync(fd);
  return open.ino === onDisk.ino && open.dev === onDisk.dev;
}

function renameIfExists(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
