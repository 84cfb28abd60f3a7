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
import { containModuleResolution, hermeticApps } from '../apps/hermetic.js';
import { startApp, type AppContext, type NodeInfo, type RunningApp } from '../apps/apps.js';
import { drainHttpServer, type HttpDrain } from '../apps/http-drain.js';
import { BootError, isBootError } from '../errors.js';
import { nodeNameFor, type LaunchEnv } from '../release/launch-env.js';
import { Lifecycle, type Stage } from '../apps/lifecycle.js';
import { createLogger, describeError, type LogControl, type Logger } from '../logs/log.js';
import { readManifest, selectNodeType, type Manifest, type NodeTypeSpec } from '../release/manifest.js';
import { installSignalHandlers, stopAsTerm, type ShutdownRequest } from './signals.js';
import { loadSysConfig, type SysConfig } from '../release/sys-config.js';
import type { ForegroundOptions, NodeHandle, NodePlan } from './node-types.js';

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

/** Runs the node in this process until it stops; resolves with the exit code. */
export function runForeground(plan: NodePlan, logControl: LogControl, opts: ForegroundOptions = {}): Promise<number> {
  return new ForegroundNode(plan, logControl, opts).run();
}

/**
 * One node in this process, its state in one place: the apps running (in start order), the app
 * starting, the run state (started, stopping, exiting), the HTTP servers to drain, the config in
 * force. It is the node's handle too (NodeHandle: what the REPLs, the control channel and a
 * worker's master see). Signals (signals.ts, unless a worker's master gives the stages) call
 * its `advance`.
 */
class ForegroundNode implements NodeHandle {
  readonly #plan: NodePlan;
  readonly #opts: ForegroundOptions;
  readonly #log: Logger;
  readonly info: NodeInfo;
  readonly lifecycle: Lifecycle;
  /** When the node began to boot (ms since the epoch). */
  readonly startedAt = Date.now();
  readonly #running: RunningApp[] = [];
  /** Every drained HTTP server of the apps (ctx.drain, and a program's servers). */
  readonly #drains: HttpDrain[] = [];
  /** The app whose start is under way (while the node boots). */
  #starting: string | undefined;
  #started = false;
  #stopping = false;
  #exiting = false;
  #sysConfig: SysConfig;
  #resolveExit: (code: number) => void = () => {};
  readonly #exit = new Promise<number>((resolve) => (this.#resolveExit = resolve));
  #uninstall: () => void = () => {};

  constructor(plan: NodePlan, logControl: LogControl, opts: ForegroundOptions) {
    this.#plan = plan;
    this.#opts = opts;
    this.#log = createLogger(opts.logScope ?? plan.info.name, logControl);
    this.info = plan.info;
    this.lifecycle = new Lifecycle((err) => this.#log.error(`a stage listener failed: ${describeError(err, true)}`));
    this.#sysConfig = plan.sysConfig;
  }

  run(): Promise<number> {
    const log = this.#log;
    process.title = this.#opts.processTitle ?? this.#plan.nodeType.processName;
    // A node stays up until it is told to stop, even when its apps hold no handle of their own.
    const keepAlive = setInterval(() => {}, 1 << 30);
    void this.#exit.then(() => {
      clearInterval(keepAlive);
      this.#uninstall();
    });
    process.on('exit', (code) => {
      if (!this.#exiting) log.warn(`process exiting with code ${code} outside the node's control (process.exit or a crash)`);
    });
    this.lifecycle.onStage((stage) => log.info(`stage ${stage}, ${this.lifecycle.inFlight} in flight`));
    this.lifecycle.onIdle(() => this.#stopWhenIdle());
    // A worker takes its stages from its master, never from signals (a terminal's Ctrl-C reaches
    // the whole process group).
    if (this.#opts.signals !== false) {
      this.#uninstall = installSignalHandlers({
        shutdown: (request: ShutdownRequest, signal: NodeJS.Signals) => {
          log.info(`received ${signal} (shutdown step ${request.step} of 4)`);
          this.advance(request.stage);
        },
      });
    }
    this.#opts.onStarting?.(this);
    this.#startAll().catch((err: unknown) => {
      log.error(`node ${this.#plan.info.name} failed: ${describeError(err, true)}`);
      this.#finish(1);
    });
    return this.#exit;
  }

  #finish(code: number): void {
    this.#exiting = true;
    this.#resolveExit(code);
  }

  async #stopAll(): Promise<number> {
    this.#stopping = true;
    // Stop accepting first: a connection accepted once the apps refuse work ('stopping') would
    // get a refusal instead of an answer. From the first stage (draining: work is still taken),
    // the connections also finish before the stage moves on (bounded by the drain's timeout).
    // Each app's stop then waits on the same close.
    const closing = this.#drains.splice(0).map((d) => d.close());
    if (this.lifecycle.stage === 'draining') await Promise.all(closing);
    this.lifecycle.advance('stopping');
    let code = 0;
    for (const app of [...this.#running].reverse()) {
      try {
        await app.stop();
        this.#log.info(`app ${app.spec.name} stopped`);
      } catch (err) {
        code = 1;
        this.#log.error(`app ${app.spec.name} failed to stop: ${describeError(err, !isBootError(err))}`);
      }
    }
    this.#running.length = 0;
    return code;
  }

  /** Draining, rejecting and hanging-up all end the same way: stop once nothing is in flight. */
  #stopWhenIdle(): void {
    if (!this.#started || this.#stopping || this.lifecycle.stage === 'running' || this.lifecycle.inFlight > 0) return;
    this.#stopping = true;
    setImmediate(() => {
      void this.#stopAll().then((code) => {
        this.#log.info(`node ${this.#plan.info.name} stopped`);
        this.#finish(code);
      });
    });
  }

  /**
   * A stop while the node boots aborts the boot: the apps that started are stopped in reverse
   * order, the one starting is abandoned (its start may never end: the process exits anyway).
   */
  #abortBoot(stage: Stage): void {
    this.#stopping = true;
    this.lifecycle.advance(stage);
    const stopped = this.#running.map((a) => a.spec.name);
    const starting = this.#starting;
    this.#log.warn(
      `stop requested while starting: boot aborted${starting ? `, app ${starting} abandoned mid-start` : ''}; ` +
        `${stopped.length ? `stopping ${stopped.reverse().join(', ')}` : 'no app had started'}`,
    );
    void this.#stopAll().then((code) => {
      this.#log.info(`node ${this.#plan.info.name} stopped before it was ready`);
      this.#finish(code);
    });
  }

  /** Moves to a shutdown stage (never backwards), or exits at once. */
  advance(stage: ShutdownRequest['stage']): void {
    if (stage === 'exit') {
      // The last stage is immediate: no teardown, no wait (services' exit handlers still run).
      this.#log.warn(`exiting now with ${this.lifecycle.inFlight} in flight (the last shutdown stage: no stop, no wait)`);
      this.#finish(1);
      process.exit(1);
    }
    if (!this.#started && !this.#stopping && !this.#exiting) return this.#abortBoot(stage);
    this.lifecycle.advance(stage);
    this.#stopWhenIdle();
  }

  async restartApps(): Promise<string> {
    if (!this.#started || this.#stopping) throw new Error(`the node is ${this.#started ? 'stopping' : 'still starting'}; try again later`);
    this.#started = false;
    for (const app of [...this.#running].reverse()) {
      await app.stop();
      this.#log.info(`app ${app.spec.name} stopped (restart)`);
    }
    this.#running.length = 0;
    await this.#startAll();
    return `restarted ${this.#plan.nodeType.apps.join(', ')}`;
  }

  async reloadConfig(): Promise<string> {
    const plan = this.#plan;
    const next = planNode(plan.launch, process.env).sysConfig;
    const told: string[] = [];
    for (const app of this.#running) {
      const changed = JSON.stringify(next[app.spec.name] ?? {}) !== JSON.stringify(this.#sysConfig[app.spec.name] ?? {});
      if (changed && (await app.configChange(next[app.spec.name] ?? {}))) told.push(app.spec.name);
    }
    this.#sysConfig = next;
    this.#log.info(`config reloaded from ${plan.configSources.join(', ') || '(none)'}${told.length ? `; told ${told.join(', ')}` : ''}`);
    return told.length ? `config reloaded; configChange called for ${told.join(', ')}` : 'config reloaded; no app changed or implements configChange';
  }

  // The handle (NodeHandle): what the REPLs and the control channel see of the node.
  get apps(): ReadonlyMap<string, unknown> {
    return new Map(this.#running.map((a) => [a.spec.name, a.state]));
  }

  get config(): SysConfig {
    return this.#sysConfig;
  }

  get ready(): boolean {
    return this.#started;
  }

  stop(): void {
    stopAsTerm();
  }

  /** The context an app's `start` gets. */
  #contextFor(name: string): AppContext {
    const spec = this.#plan.manifest.apps.get(name)!;
    return {
      name,
      version: spec.version,
      config: this.#sysConfig[name] ?? {},
      log: this.#log.child(name),
      lifecycle: this.lifecycle.view(),
      node: this.#plan.info,
      drain: (server, drainOpts) => {
        const d = drainHttpServer(server, this.lifecycle.view(), drainOpts);
        this.#drains.push(d);
        return d;
      },
    };
  }

  async #startAll(): Promise<void> {
    const { manifest, nodeType, info, launch } = this.#plan;
    const log = this.#log;
    // Package lookups of the apps stay inside the release (hermetic.ts).
    containModuleResolution(launch.root, hermeticApps(nodeType.apps.map((n) => manifest.apps.get(n)!)));
    log.debug(`release ${manifest.name} ${manifest.version}, node type ${nodeType.name}, config from ${this.#plan.configSources.join(', ') || '(none)'}`);
    for (const name of nodeType.apps) {
      if (!(await this.#startOne(name))) return;
    }
    this.#started = true;
    log.info(`node ${info.name} ready (${manifest.name} ${manifest.version}, apps: ${nodeType.apps.join(', ') || '(none)'})`);
    this.#opts.onReady?.(this);
    this.#stopWhenIdle();
  }

  /** Starts app `name`; false when the boot ends here (a stop aborted it, or the app failed: then the node stops, 1). */
  async #startOne(name: string): Promise<boolean> {
    const spec = this.#plan.manifest.apps.get(name)!;
    const ctx = this.#contextFor(name);
    const log = this.#log;
    log.debug(`starting app ${name} (${spec.type}, ${spec.entry})`);
    if (this.#stopping || this.#exiting) return false; // a stop aborted the boot
    this.#starting = name;
    try {
      const app = await startApp(spec, ctx, name === this.#plan.extraArgsFor ? this.#plan.launch.programArgs : []);
      if (this.#stopping || this.#exiting) return false; // abandoned: the boot was aborted while it started
      this.#running.push(app);
    } catch (err) {
      if (this.#stopping || this.#exiting) return false;
      log.error(`app ${name} failed to start: ${describeError(err, !isBootError(err))}`);
      this.#opts.onStartFailed?.(`app ${name} failed to start: ${describeError(err, false)}`);
      await this.#stopAll();
      log.error(`node ${this.#plan.info.name} failed to start`);
      this.#finish(1);
      return false;
    }
    this.#starting = undefined;
    log.info(`app ${name} started`);
    return !(this.#exiting || this.#stopping);
  }
}
