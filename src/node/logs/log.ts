/**
 * The node's leveled logger. Every line is `<ISO time> <level> [<scope>] message`; a message of
 * several lines gets the header on each line, so `grep` on a scope or level finds all of it.
 * Where lines go is a `LogSink` (the console now, a rotated file for daemons later); the level
 * is shared by a logger and all its children so it can be changed at run time (ALRM, later).
 */
import { format } from 'node:util';
import { readLaunchSettings } from '../release/launch-env.js';

export const LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type Level = (typeof LEVELS)[number];

export interface LogSink {
  write(level: Level, line: string): void;
}

export interface Logger {
  error(msg: unknown, ...args: unknown[]): void;
  warn(msg: unknown, ...args: unknown[]): void;
  info(msg: unknown, ...args: unknown[]): void;
  debug(msg: unknown, ...args: unknown[]): void;
  trace(msg: unknown, ...args: unknown[]): void;
  /** True when a message at `level` would be written. */
  enabled(level: Level): boolean;
  /** A logger with another scope sharing this one's level and sink. */
  child(scope: string): Logger;
  readonly scope: string;
}

/** The mutable part shared by a root logger and its children. */
export interface LogControl {
  level: Level;
  sink: LogSink;
  /** Lines the sink failed to take (it threw: a full disk under foreground's stdout). */
  dropped?: number;
}

export function isLevel(value: string): value is Level {
  return (LEVELS as readonly string[]).includes(value);
}

/**
 * The console sink: error lines to stderr, the rest to stdout. It writes with the streams' own
 * class method, never a wrapper on the instance, so a program app's output watcher (which wraps
 * `process.stdout.write`) never sees, and never matches, the node's own lines.
 */
export function consoleSink(stdout?: NodeJS.WritableStream, stderr?: NodeJS.WritableStream): LogSink {
  type Write = (s: string) => boolean;
  // process.stdout and process.stderr are taken on first use (Node makes a stream on first
  // access, which loads node:stream: a daemon never needs them); their class's own write is
  // what a wrapper installed on the instance in the meantime would have replaced.
  const own = (s: NodeJS.WritableStream): Write => s.write.bind(s) as Write;
  const classWrite = (s: NodeJS.WritableStream): Write => {
    const write = (Object.getPrototypeOf(s) as { write?: unknown }).write;
    return typeof write === 'function' ? (write.bind(s) as Write) : own(s);
  };
  let out: Write | undefined = stdout && own(stdout);
  let err: Write | undefined = stderr && own(stderr);
  return {
    write(level, line) {
      if (level === 'error') (err ??= classWrite(process.stderr))(line + '\n');
      else (out ??= classWrite(process.stdout))(line + '\n');
    },
  };
}

/** The level `NODEREL_LOG_LEVEL` names (else info), writing to the console. */
export function logControlFromEnv(env: NodeJS.ProcessEnv): LogControl {
  const wanted = readLaunchSettings(env).logLevel;
  return { level: wanted && isLevel(wanted) ? wanted : 'info', sink: consoleSink() };
}

export function createLogger(scope: string, control: LogControl): Logger {
  const make = (s: string): Logger => {
    const emit =
      (level: Level) =>
      (msg: unknown, ...args: unknown[]): void => {
        if (LEVELS.indexOf(level) > LEVELS.indexOf(control.level)) return;
        const text = format(msg, ...args);
        const head = `${isoTime(Date.now())} ${level} [${s}] `;
        try {
          control.sink.write(level, text.split('\n').map((l) => head + l).join('\n'));
        } catch {
          // logging never throws into the caller (an app's log.debug) nor stops the node
          control.dropped = (control.dropped ?? 0) + 1;
        }
      };
    return {
      scope: s,
      error: emit('error'),
      warn: emit('warn'),
      info: emit('info'),
      debug: emit('debug'),
      trace: emit('trace'),
      enabled: (level) => LEVELS.indexOf(level) <= LEVELS.indexOf(control.level),
      child: (childScope) => make(childScope),
    };
  };
  return make(scope);
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * `Date#toISOString` without it: formatting a date as text makes V8 consult ICU's time zone
 * data, which maps about 1 MiB of the node binary into the process (bench/README.md); the UTC
 * fields alone do not.
 */
export function isoTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}Z`;
}

/** One line for an error: its message, or its stack when `withStack` (bugs, app crashes). */
export function describeError(err: unknown, withStack = false): string {
  if (err instanceof Error) return withStack && err.stack ? err.stack : err.message;
  return String(err);
}
