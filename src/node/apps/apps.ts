/**
 * Starting one app of the node, after OTP's application behaviour (ARCHITECTURE.md, "The app
 * contract"), bounded by its `start_timeout_ms`:
 *   module   `import()` the entry, `await start(ctx)`, keep the state for `stop(state, ctx)`
 *   program  a plain Node program run in this process as the main module; ready at once, when
 *            a TCP port answers, or when its output matches a pattern; nothing to stop (the
 *            process exits once the other apps have stopped)
 * The order of apps, logging and what to do on failure belong to the node (`node.ts`).
 */
import type { Server as HttpServer } from 'node:http';
import { statSync } from 'node:fs';
import { Server as NetServer } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DrainOptions, HttpDrain } from './http-drain.js';
import { BootError } from '../errors.js';
import type { LifecycleView } from './lifecycle.js';
import type { Logger } from '../logs/log.js';
import type { AppSpec } from '../release/manifest.js';
import { watchFd1File, watchOutput } from './readiness.js';
import { runAsMain } from './run-main.js';
import { substituteString } from '../release/sys-config.js';

export interface NodeInfo {
  /** Node name, e.g. `kazoo_apps@host`. */
  readonly name: string;
  /** Node type, e.g. `kazoo_apps`. */
  readonly type: string;
  /** Release name and version. */
  readonly release: string;
  readonly version: string;
  /** Absolute release root. */
  readonly root: string;
}

/** The `ctx` a module app's `start(ctx)` and `stop(state, ctx)` receive. */
export interface AppContext {
  readonly name: string;
  readonly version: string;
  /** The app's sys.config section (`{}` when absent). */
  readonly config: Readonly<Record<string, unknown>>;
  readonly log: Logger;
  readonly lifecycle: LifecycleView;
  readonly node: NodeInfo;
  /**
   * Drains an HTTP server with the node's stages: `Connection: close` once the node leaves
   * `running`, idle keep-alive connections closed after a grace, and a `close()` for `stop` that
   * lets every connection finish (http-drain.ts). Call it right after creating the server.
   */
  drain(server: HttpServer, opts?: DrainOptions): HttpDrain;
}

export interface RunningApp {
  readonly spec: AppSpec;
  /** What the module's `start` returned (reachable from the console's REPL); undefined for programs. */
  readonly state: unknown;
  /** Releases the app's resources (module: its `stop`; program: nothing). */
  stop(): Promise<void>;
  /** Hands a changed config to the app's `configChange(config, state, ctx)`; false when it has none. */
  configChange(config: Readonly<Record<string, unknown>>): Promise<boolean>;
}

interface AppModule {
  start(ctx: AppContext): unknown;
  stop?(state: unknown, ctx: AppContext): unknown;
  configChange?(config: Readonly<Record<string, unknown>>, state: unknown, ctx: AppContext): unknown;
}

/**
 * Starts `spec`; rejects when it throws, rejects, or is not ready within its start timeout.
 * `extraArgs` (the operator's `-- ARGS`) follow a program's configured args.
 */
export async function startApp(spec: AppSpec, ctx: AppContext, extraArgs: readonly string[] = []): Promise<RunningApp> {
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(new BootError('EAPPSTART', `not ready within ${spec.startTimeoutMs} ms (start_timeout_ms)`)),
    spec.startTimeoutMs,
  );
  try {
    return spec.type === 'module' ? await startModule(spec, ctx, abort.signal) : await startProgram(spec, ctx, abort.signal, extraArgs);
  } finally {
    clearTimeout(timer);
    abort.abort(new Error('start finished'));
  }
}

async function startModule(spec: AppSpec, ctx: AppContext, signal: AbortSignal): Promise<RunningApp> {
  const mod = (await untilAborted(import(pathToFileURL(spec.entry).href), signal)) as Partial<AppModule>;
  if (typeof mod.start !== 'function') {
    throw new BootError('EAPPSTART', `${spec.entry} exports no start(ctx) function (a module app exports start and stop)`);
  }
  const start = mod.start;
  const state = await untilAborted(Promise.resolve().then(() => start(ctx)), signal);
  return {
    spec,
    state,
    async stop() {
      if (typeof mod.stop === 'function') await mod.stop(state, ctx);
    },
    async configChange(config) {
      if (typeof mod.configChange !== 'function') return false;
      await mod.configChange(config, state, ctx);
      return true;
    },
  };
}

/**
 * A program's working directory and argv, as `npm start` would run it: in its own directory in
 * the release unless `cwd` says otherwise (never the operator's directory or the release root
 * by accident), `${VAR}` / `${VAR:-default}` substituted from the node's environment.
 */
export function programLaunch(spec: AppSpec, extraArgs: readonly string[], env: NodeJS.ProcessEnv = process.env): { cwd: string; args: string[] } {
  const unset: string[] = [];
  const sub = (text: string, at: string): string => substituteString(text, env, (name) => unset.push(`\${${name}} in ${at}`));
  const args = spec.args.map((a, i) => sub(a, `args[${i}]`));
  const cwd = resolvePath(spec.dir, sub(spec.cwd, 'cwd'));
  if (unset.length > 0) {
    throw new BootError('EAPPSTART', `environment variable not set and no default: ${unset.join(', ')}; set it, or write \${VAR:-default} in the app's args/cwd in rel/relx.config`);
  }
  let isDir = false;
  try {
    isDir = statSync(cwd).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new BootError('EAPPSTART', `cwd ${cwd} is not a directory; fix the app's cwd in rel/relx.config (relative to ${spec.dir})`);
  return { cwd, args: [...args, ...extraArgs] };
}

async function startProgram(spec: AppSpec, ctx: AppContext, signal: AbortSignal, extraArgs: readonly string[]): Promise<RunningApp> {
  const ready = spec.ready;
  const launch = programLaunch(spec, extraArgs);
  // Watch before the program runs: its first lines may be the ones that say it is ready.
  const output = ready.type === 'output' ? watchOutput(ready.pattern, signal) : undefined;
  const fd1 = ready.type === 'output' ? watchFd1File(ready.pattern, signal) : undefined;
  fd1?.catch(() => {});
  // An ES module loads asynchronously: what it throws while starting arrives as an uncaught
  // exception. Until it is ready, that is this app failing to start, not a node crash.
  let failed: ((err: unknown) => void) | undefined;
  const crashed = new Promise<never>((_, reject) => (failed = reject));
  crashed.catch(() => {});
  const onUncaught = (err: unknown): void => failed?.(err);
  process.on('uncaughtException', onUncaught);
  // A plain program knows nothing of the node's stages: drain the HTTP servers it listens on for
  // it, so its reloads and stops fail no keep-alive request either.
  const drains: HttpDrain[] = [];
  onHttpListen((server) => drains.push(ctx.drain(server)));
  // The node's process title and its shutdown signals stay the node's (see each function).
  keepProcessTitle(ctx.log);
  const ownShutdown = deferShutdownListeners();
  // Before the program runs too: a CommonJS program listens while it loads.
  const port = ready.type === 'port' ? portReady(ready.port, signal) : undefined;
  port?.catch(() => {});
  try {
    ctx.log.debug(`running ${spec.entry} as the main module in ${launch.cwd}${launch.args.length ? ` with ${JSON.stringify(launch.args)}` : ''}`);
    process.chdir(launch.cwd);
    runAsMain(spec.entry, launch.args);
    if (port) await Promise.race([port, crashed]);
    else if (output) await Promise.race([output.matched, ...(fd1 ? [fd1] : []), crashed]);
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  return {
    spec,
    state: undefined,
    // Its HTTP servers stop accepting and let their connections finish; the process exits after.
    stop: async () => {
      await Promise.all(drains.map((d) => d.close()));
      // Then the program's own INT/TERM/QUIT handlers, as its last word (they may exit).
      ownShutdown.run(ctx.log);
    },
    configChange: async () => false,
  };
}

/**
 * Port readiness: a server of this process listens on the port. Not "the port answers": another
 * process may hold the port (the program's own listen then failed), and a worker or a node
 * started by USR2 shares its listening sockets with processes that already answer on it.
 */
function portReady(port: number, signal: AbortSignal): Promise<void> {
  return untilAborted(
    new Promise<void>((resolve) => {
      const previous = NetServer.prototype.listen;
      NetServer.prototype.listen = function listen(this: NetServer, ...args: unknown[]): NetServer {
        this.once('listening', () => {
          const address = this.address();
          if (typeof address === 'object' && address?.port === port) resolve();
        });
        return (previous as (...a: unknown[]) => NetServer).apply(this, args);
      } as typeof NetServer.prototype.listen;
    }),
    signal,
  );
}

/**
 * The process title is the node type's process name (`pgrep -x NAME`, and how the launcher tells
 * its node from another process that got the same pid); a program that sets process.title (as
 * http-server does) is logged and left as it was.
 */
function keepProcessTitle(log: Logger): void {
  const title = process.title;
  Object.defineProperty(process, 'title', {
    configurable: true,
    enumerable: true,
    get: () => title,
    set: (value: unknown) => log.debug(`the program set process.title to ${JSON.stringify(String(value))}; the node keeps ${JSON.stringify(title)}`),
  });
}

const SHUTDOWN_SIGNALS = new Set<string | symbol>(['SIGINT', 'SIGTERM', 'SIGQUIT']);
type Listener = (...args: unknown[]) => void;

/**
 * The node owns INT, TERM and QUIT (the staged shutdown). A program's own listeners for them (a
 * server that calls process.exit on TERM, say) would cut the drain short and fail requests in
 * flight on every stop, USR2 retirement or upgrade; they are held back and run once the
 * program's servers have drained, when the node stops it, as its last word.
 */
function deferShutdownListeners(): { run(log: Logger): void } {
  const held: { signal: string; listener: Listener }[] = [];
  const proc = process as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const method of ['on', 'addListener', 'once', 'prependListener', 'prependOnceListener', 'off', 'removeListener']) {
    const original = proc[method]!;
    proc[method] = function (this: unknown, event: unknown, listener: unknown, ...rest: unknown[]) {
      if (typeof event === 'string' && SHUTDOWN_SIGNALS.has(event) && typeof listener === 'function') {
        if (method === 'off' || method === 'removeListener') {
          const i = held.findIndex((h) => h.signal === event && h.listener === listener);
          if (i !== -1) held.splice(i, 1);
          else original.call(this, event, listener, ...rest);
        } else {
          held.push({ signal: event, listener: listener as Listener });
        }
        return process;
      }
      return original.call(this, event, listener, ...rest);
    };
  }
  return {
    run(log) {
      for (const { signal, listener } of held.splice(0)) {
        log.debug(`running the program's own ${signal} handler`);
        try {
          listener(signal);
        } catch (err) {
          log.error(`the program's ${signal} handler failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    },
  };
}

/** Calls `fn` once for each HTTP server of this process that starts listening (from now on). */
function onHttpListen(fn: (server: HttpServer) => void): void {
  const seen = new WeakSet<NetServer>();
  const previous = NetServer.prototype.listen;
  NetServer.prototype.listen = function listen(this: NetServer, ...args: unknown[]): NetServer {
    // An HTTP(S) server, told apart without importing node:http (its ESM namespace loads undici).
    if (typeof (this as Partial<HttpServer>).closeIdleConnections === 'function' && !seen.has(this)) {
      seen.add(this);
      fn(this as HttpServer);
    }
    return (previous as (...a: unknown[]) => NetServer).apply(this, args);
  } as typeof NetServer.prototype.listen;
}

/** `promise`, or a rejection with the abort reason when `signal` fires first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
