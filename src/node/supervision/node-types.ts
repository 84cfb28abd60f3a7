/**
 * The types the node's implementations share, in a module of their own so that they import it
 * and not each other: the plan (what a node knows before it starts apps), the handle (what a
 * running node offers its REPLs and the control channel, whether its apps run in this process,
 * node.ts, or in workers, master.ts), the options of both runners, and the master <-> worker
 * messages (worker.ts has the protocol). Types only: nothing here runs.
 */
import type { NodeInfo } from '../apps/apps.js';
import type { LaunchEnv } from '../release/launch-env.js';
import type { Lifecycle, Stage } from '../apps/lifecycle.js';
import type { Manifest, NodeTypeSpec } from '../release/manifest.js';
import type { SysConfig } from '../release/sys-config.js';

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

/** One evaluation's result (evaluate.ts). */
export interface Evaluation {
  /** The value as text: a string as it is, anything else through util.inspect. */
  text: string;
  /** The value was undefined (a REPL prints nothing then). */
  undefined: boolean;
}

/** A worker as a master's status reports it. */
export interface WorkerStatus {
  index: number;
  pid: number;
  state: string;
  stage?: string;
  in_flight?: number;
  rss?: number;
  uptime_s?: number;
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

export interface MasterOptions extends ForegroundOptions {
  /** The node runs as a daemon (WINCH is honoured only then, as in unicorn). */
  daemonized: boolean;
  /** The node's pid file: USR2 renames it to `<pid file>.oldbin` while a new master starts. */
  pidFile: string;
  /** Called once a new master started by USR2 (signal) is ready; then call completeHandover. */
  onSuccessor?(pid: number): void;
  /** Called when a ready successor exits while this master still runs (a rollback). */
  onSuccessorGone?(): void;
  /** Reopen the master's log (USR1, or HUP with NODEREL_HUP=reopen_logs). */
  reopenLogs?(): void;
}

/** master -> worker (worker.ts describes the protocol). */
export type ToWorker =
  | { t: 'listen-ok'; id: number }
  | { t: 'listen-err'; id: number; message: string; code?: string }
  | { t: 'stage'; stage: Stage | 'exit' }
  | { t: 'stop' }
  | { t: 'status'; id: number }
  | { t: 'level'; level: string }
  | { t: 'eval'; id: number; code: string; session?: string; timeoutMs?: number }
  | { t: 'eval-end'; session: string };

/** worker -> master. */
export type FromWorker =
  | { t: 'listen'; id: number; host: string; port: number; ipv6Only?: boolean }
  | { t: 'ready' }
  | { t: 'failed'; message: string }
  | { t: 'status'; id: number; stage: string; in_flight: number; rss: number; uptime_s: number }
  | { t: 'eval'; id: number; ok: boolean; text: string; undefined?: boolean; incomplete?: boolean };
