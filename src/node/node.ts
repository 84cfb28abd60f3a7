/**
 * One node in one process (`foreground`): read the manifest and config, take the process name,
 * start the node type's apps in order, then run until the staged shutdown (signals.ts) says
 * to stop; stop the apps in reverse order. Resolves with the exit code; `boot.ts` exits with it.
 *
 *   start fails (throws, rejects, times out)  log it with the app name, stop the started apps, 1
 *   INT/TERM 1-3, QUIT                         move the stage; once nothing is in flight, stop, 0
 *   INT/TERM 4                                 1 at once
 *   an app fails to stop                       logged, the others still stop, 1
 */
import { containModuleResolution, hermeticApps } from './hermetic.js';
import { startApp, type AppContext, type NodeInfo, type RunningApp } from './apps.js';
import { drainHttpServer, type HttpDrain } from './http-drain.js';
import { BootError, isBootError } from './errors.js';
import { nodeNameFor, type LaunchEnv } from './launch-env.js';
import { Lifecycle, type Stage } from './lifecycle.js';
import type { Evaluation } from './evaluate.js';
import type { WorkerStatus } from './master.js';
import { createLogger, describeError, type LogControl } from './log.js';
import { readManifest, selectNodeType, type Manifest, type NodeTypeSpec } from './manifest.js';
import { installSignalHandlers, type ShutdownRequest } from './signals.js';
import { loadSysConfig, type SysConfig } from './sys-config.js';

/** Everything a node needs to know before it starts apps; read once from the release. */
export interface NodePlan {
  readonly launch: LaunchEnv;
  readonly manifest: Manifest;
  readonly nodeType: NodeTypeSpec;
  readonly info: NodeInfo;
  readonly sysConfig: SysConfig;
  readonly configSources: readonly string[];
  /** The program app that takes the operator's extra arguments (`-- ARGS`), when any were given. */
  readonly extraArgsFor?: string;
}

export function planNode(launch: LaunchEnv, env: NodeJS.ProcessEnv = process.env): NodePlan {
  const manifest = readManifest(launch.root, launch.relVsn);
  const nodeType = selectNodeType(manifest, launch.nodeType);
  const relName = launch.relName ?? manifest.name;
  const { config, sources } = loadSysConfig({
    root: launch.root,
    vsn: launch.relVsn,
    relName,
    substitute: manifest.sysConfigSrc,
    typed: manifest.sysConfigTyped,
    env,
  });
  return {
    launch,
    manifest,
    nodeType,
    extraArgsFor: extraArgsTarget(launch, manifest, nodeType),
    info: { name: nodeNameFor(launch, nodeType.name), type: nodeType.name, release: relName, version: manifest.version, root: launch.root },
    sysConfig: config,
    configSources: sources,
  };
}

/**
 * Extra arguments (`bin/<name> foreground -- ARGS`) go to the node type's one program app; with
 * no program app, or several, they are refused rather than dropped.
 */
function extraArgsTarget(launch: LaunchEnv, manifest: Manifest, nodeType: NodeTypeSpec): string | undefined {
  if (launch.programArgs.length === 0) return undefined;
  const programs = nodeType.apps.filter((a) => manifest.apps.get(a)?.type === 'program');
  const given = `-- ${launch.programArgs.join(' ')}`;
  if (programs.length === 1) return programs[0];
  if (programs.length === 0) {
    throw new BootError('EARGS', `extra arguments (${given}) go to a program app, and node type ${nodeType.name} runs none (${nodeType.apps.join(', ')}: module apps take their settings from sys.config)`);
  }
  throw new BootError('EARGS', `extra arguments (${given}) would be ambiguous: node type ${nodeType.name} runs several program apps (${programs.join(', ')}); set each one's args in rel/relx.config instead`);
}

/** What a running node offers to its REPLs and to the control channel. */
export interface NodeHandle {
  readonly info: NodeInfo;
  readonly lifecycle: Lifecycle;
  /** App name -> the state its `start` returned, for the apps running now. */
  readonly apps: ReadonlyMap<string, unknown>;
  /** The sys.config in force (updated by reloadConfig). */
  readonly config: SysConfig;
  /** True once every app has started. */
  readonly ready: boolean;
  /** When the node began to boot (ms since the epoch). */
  readonly startedAt: number;
  /**
   * Evaluates code where the apps are (a master: in a ready worker); absent where they are in
   * this process (evaluate.ts then runs it here).
   */
  evaluate?(code: string, opts?: { session?: string; timeoutMs?: number }): Promise<Evaluation>;
  /** The REPL of evaluation `session` was left: its bindings can go (a master: in its worker). */
  endEvalSession?(session: string): void;
  /** Moves the node to a shutdown stage (as INT/TERM/QUIT do), or `exit`s at once. */
  advance(stage: Stage | 'exit'): void;
  /** A graceful stop, as one TERM: finish the work in flight, then stop the apps. */
  stop(): void;
  /** Stops the apps in reverse order and starts them again, in this process. */
  restartApps(): Promise<string>;
  /** Reloads sys.config and app.config; apps exporting configChange are told. */
  reloadConfig(): Promise<string>;
  /** A master's workers, asked for their status (absent for a single-process node). */
  workers?(): Promise<WorkerStatus[]>;
  /** Worker slots the spawn-loop guard stopped respawning. */
  spawnLoop?(): number[];
  /** How many workers the master keeps (the configured count, moved by TTIN/TTOU). */
  workerTarget?(): number;
  /** Why the node serves less than it should (a spawn loop, no worker ready); undefined when healthy. */
  degraded?(): string | undefined;
  /** USR2: a new master on this one's sockets; resolves with its pid once ready (masters only). */
  reexec?(): Promise<number>;
  /** Lets the new master take the control socket path, once this one has closed its server. */
  completeHandover?(): void;
}

export interface ForegroundOptions {
  /** Listen to INT/TERM/QUIT (default true; a worker's stages come from its master). */
  signals?: boolean;
  /** The process title (default: the node type's process name). */
  processTitle?: string;
  /** The scope of the node's log lines (default: the node name). */
  logScope?: string;
  /** Called at once, before the apps start: the handle answers status while the node boots. */
  onStarting?(node: NodeHandle): void;
  /** Called once every app has started. */
  onReady?(node: NodeHandle): void;
  /** Called when an app fails to start, with the one-line reason. */
  onStartFailed?(message: string): void;
}

/** Runs the node in this process until it stops; resolves with the exit code. */
export function runForeground(plan: NodePlan, logControl: LogControl, opts: ForegroundOptions = {}): Promise<number> {
  const { manifest, nodeType, info } = plan;
  const log = createLogger(opts.logScope ?? info.name, logControl);
  let resolveExit: (code: number) => void = () => {};
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));
  let exiting = false;
  const finish = (code: number): void => {
    exiting = true;
    resolveExit(code);
  };

  process.title = opts.processTitle ?? nodeType.processName;
  // A node stays up until it is told to stop, even when its apps hold no handle of their own.
  const keepAlive = setInterval(() => {}, 1 << 30);
  void exit.then(() => {
    clearInterval(keepAlive);
    uninstall();
  });
  process.on('exit', (code) => {
    if (!exiting) log.warn(`process exiting with code ${code} outside the node's control (process.exit or a crash)`);
  });

  const lifecycle = new Lifecycle((err) => log.error(`a stage listener failed: ${describeError(err, true)}`));
  lifecycle.onStage((stage) => log.info(`stage ${stage}, ${lifecycle.inFlight} in flight`));

  const running: RunningApp[] = [];
  let started = false;
  let stopping = false;

  /** Every drained HTTP server of the apps (ctx.drain, and a program's servers). */
  const drains: HttpDrain[] = [];

  const stopAll = async (): Promise<number> => {
    stopping = true;
    // Stop accepting first: a connection accepted once the apps refuse work ('stopping') would
    // get a refusal instead of an answer. From the first stage (draining: work is still taken),
    // the connections also finish before the stage moves on (bounded by the drain's timeout).
    // Each app's stop then waits on the same close.
    const closing = drains.splice(0).map((d) => d.close());
    if (lifecycle.stage === 'draining') await Promise.all(closing);
    lifecycle.advance('stopping');
    let code = 0;
    for (const app of [...running].reverse()) {
      try {
        await app.stop();
        log.info(`app ${app.spec.name} stopped`);
      } catch (err) {
        code = 1;
        log.error(`app ${app.spec.name} failed to stop: ${describeError(err, !isBootError(err))}`);
      }
    }
    running.length = 0;
    return code;
  };

  // Draining, rejecting and hanging-up all end the same way: stop once nothing is in flight.
  const stopWhenIdle = (): void => {
    if (!started || stopping || lifecycle.stage === 'running' || lifecycle.inFlight > 0) return;
    stopping = true;
    setImmediate(() => {
      void stopAll().then((code) => {
        log.info(`node ${info.name} stopped`);
        finish(code);
      });
    });
  };
  lifecycle.onIdle(stopWhenIdle);

  /** The app whose start is under way (while the node boots). */
  let starting: string | undefined;

  /**
   * A stop while the node boots aborts the boot: the apps that started are stopped in reverse
   * order, the one starting is abandoned (its start may never end: the process exits anyway).
   */
  const abortBoot = (stage: Stage): void => {
    stopping = true;
    lifecycle.advance(stage);
    const stopped = running.map((a) => a.spec.name);
    log.warn(
      `stop requested while starting: boot aborted${starting ? `, app ${starting} abandoned mid-start` : ''}; ` +
        `${stopped.length ? `stopping ${stopped.reverse().join(', ')}` : 'no app had started'}`,
    );
    void stopAll().then((code) => {
      log.info(`node ${info.name} stopped before it was ready`);
      finish(code);
    });
  };

  /** Moves to a shutdown stage (never backwards), or exits at once. */
  const advance = (stage: ShutdownRequest['stage']): void => {
    if (stage === 'exit') {
      // The last stage is immediate: no teardown, no wait (services' exit handlers still run).
      log.warn(`exiting now with ${lifecycle.inFlight} in flight (the last shutdown stage: no stop, no wait)`);
      finish(1);
      process.exit(1);
    }
    if (!started && !stopping && !exiting) return abortBoot(stage);
    lifecycle.advance(stage);
    stopWhenIdle();
  };
  // A worker takes its stages from its master, never from signals (a terminal's Ctrl-C reaches
  // the whole process group).
  const uninstall =
    opts.signals === false
      ? () => {}
      : installSignalHandlers({
          shutdown(request: ShutdownRequest, signal: NodeJS.Signals) {
            log.info(`received ${signal} (shutdown step ${request.step} of 4)`);
            advance(request.stage);
          },
        });

  let sysConfig = plan.sysConfig;
  const handle: NodeHandle = {
    info,
    lifecycle,
    get apps() {
      return new Map(running.map((a) => [a.spec.name, a.state]));
    },
    get config() {
      return sysConfig;
    },
    get ready() {
      return started;
    },
    startedAt: Date.now(),
    advance,
    stop() {
      // The same path as a TERM, so a console's exit, `stop` and a signal cannot race.
      process.emit('SIGTERM', 'SIGTERM');
    },
    async restartApps() {
      if (!started || stopping) throw new Error(`the node is ${started ? 'stopping' : 'still starting'}; try again later`);
      started = false;
      for (const app of [...running].reverse()) {
        await app.stop();
        log.info(`app ${app.spec.name} stopped (restart)`);
      }
      running.length = 0;
      await startAll();
      return `restarted ${nodeType.apps.join(', ')}`;
    },
    async reloadConfig() {
      const next = planNode(plan.launch, process.env).sysConfig;
      const told: string[] = [];
      for (const app of running) {
        const changed = JSON.stringify(next[app.spec.name] ?? {}) !== JSON.stringify(sysConfig[app.spec.name] ?? {});
        if (changed && (await app.configChange(next[app.spec.name] ?? {}))) told.push(app.spec.name);
      }
      sysConfig = next;
      log.info(`config reloaded from ${plan.configSources.join(', ') || '(none)'}${told.length ? `; told ${told.join(', ')}` : ''}`);
      return told.length ? `config reloaded; configChange called for ${told.join(', ')}` : 'config reloaded; no app changed or implements configChange';
    },
  };
  opts.onStarting?.(handle);

  const startAll = async (): Promise<void> => {
    // Package lookups of the apps stay inside the release (hermetic.ts).
    containModuleResolution(plan.launch.root, hermeticApps(nodeType.apps.map((n) => manifest.apps.get(n)!)));
    log.debug(`release ${manifest.name} ${manifest.version}, node type ${nodeType.name}, config from ${plan.configSources.join(', ') || '(none)'}`);
    for (const name of nodeType.apps) {
      const spec = manifest.apps.get(name)!;
      const ctx: AppContext = {
        name,
        version: spec.version,
        config: sysConfig[name] ?? {},
        log: log.child(name),
        lifecycle: lifecycle.view(),
        node: info,
        drain: (server, drainOpts) => {
          const d = drainHttpServer(server, lifecycle.view(), drainOpts);
          drains.push(d);
          return d;
        },
      };
      log.debug(`starting app ${name} (${spec.type}, ${spec.entry})`);
      if (stopping || exiting) return; // a stop aborted the boot
      starting = name;
      try {
        const app = await startApp(spec, ctx, name === plan.extraArgsFor ? plan.launch.programArgs : []);
        if (stopping || exiting) return; // abandoned: the boot was aborted while it started
        running.push(app);
      } catch (err) {
        if (stopping || exiting) return;
        log.error(`app ${name} failed to start: ${describeError(err, !isBootError(err))}`);
        opts.onStartFailed?.(`app ${name} failed to start: ${describeError(err, false)}`);
        await stopAll();
        log.error(`node ${info.name} failed to start`);
        finish(1);
        return;
      }
      starting = undefined;
      log.info(`app ${name} started`);
      if (exiting || stopping) return;
    }
    started = true;
    log.info(`node ${info.name} ready (${manifest.name} ${manifest.version}, apps: ${nodeType.apps.join(', ') || '(none)'})`);
    opts.onReady?.(handle);
    stopWhenIdle();
  };
  startAll().catch((err: unknown) => {
    log.error(`node ${info.name} failed: ${describeError(err, true)}`);
    finish(1);
  });
  return exit;
}
