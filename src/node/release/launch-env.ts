/**
 * What the launcher (`bin/<name>`) tells the node through the environment (ARCHITECTURE.md,
 * "The launcher environment"). Values it may leave out are derived the way the launcher would:
 * the root from where this file lives (`<root>/lib/noderel-<vsn>/`), the release version from
 * `releases/start.data`, run state and logs under the root. The node type and name need the
 * manifest and are settled by `manifest.ts` (`selectNodeType`) and `nodeNameFor`.
 *
 * Every launcher-given variable the runtime reads is read here, nowhere else: `readLaunchEnv`
 * for a node and a control command (it may read `releases/start.data`), `readLaunchSettings` for
 * what any process reads before it knows its release (the log level, a worker's index, the
 * switches): no disk, no failure. The program apps' own environment (`${VAR}` in their args,
 * `sys.config`) and the cookie's `<NAME>_COOKIE` are the apps' and cookie.ts's, not the launcher's.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { LOG_DIR, releasePath, START_DATA, TMP_DIR } from '../../contract/layout.js';
import { BootError } from '../errors.js';

/** The launcher's variables a process reads without the disk (`readLaunchSettings`). */
export interface LaunchSettings {
  /** `NODEREL_NODE_NAME`, when set (else `<type>@<hostname>`). */
  readonly nodeName: string | undefined;
  /** `NODEREL_LOG_LEVEL` as given (log.ts checks it is a level). */
  readonly logLevel: string | undefined;
  /** `NODEREL_RUN_DIR`: the node's run state (default `$RELEASE_TMP/<node>`). */
  readonly runDir: string | undefined;
  /** `NODEREL_LOG_DIR`: a daemon's console.log directory (default `$RUNNER_LOG_DIR/<node>`). */
  readonly nodeLogDir: string | undefined;
  /** `NODEREL_VM_ARGS`: the substituted vm.args of this node (the cookie may be in it). */
  readonly vmArgsFile: string | undefined;
  /** `NODEREL_START_STATUS`: the file the launcher's `start` polls (services.ts writes it once). */
  readonly startStatusFile: string | undefined;
  /** `NODEREL_REEXEC`: this node was started by a USR2 (or a replace) of an old one (successor.ts). */
  readonly reexec: boolean;
  /**
   * `NODEREL_LISTEN_FDS`: how many listening sockets systemd passed from fd 3 (socket
   * activation; the launcher sets it from `LISTEN_FDS` when `LISTEN_PID` is its pid). 0: none.
   */
  readonly listenFds: number;
  /** `NODEREL_HUP=reopen_logs`: HUP reopens the logs instead of reloading. */
  readonly hupReopensLogs: boolean;
  /** `NODEREL_WORKER_INDEX`: a worker's slot (its master sets it; 0 when absent). */
  readonly workerIndex: number;
  /** `NODEREL_GC_AFTER_BOOT` is not `0` (heap.ts). */
  readonly gcAfterBoot: boolean;
  /** `NODEREL_HERMETIC` is not `0` (hermetic.ts). */
  readonly hermetic: boolean;
  /** `RUNNER_LOG_MAX_BYTES`, `RUNNER_LOG_GENERATIONS`, `RUNNER_LOG_MODE` as given (console-log.ts parses them). */
  readonly logRotation: { readonly maxBytes: string | undefined; readonly generations: string | undefined; readonly mode: string | undefined };
}

export function readLaunchSettings(env: NodeJS.ProcessEnv = process.env): LaunchSettings {
  return {
    nodeName: nonEmpty(env.NODEREL_NODE_NAME),
    logLevel: nonEmpty(env.NODEREL_LOG_LEVEL),
    runDir: nonEmpty(env.NODEREL_RUN_DIR),
    nodeLogDir: nonEmpty(env.NODEREL_LOG_DIR),
    vmArgsFile: nonEmpty(env.NODEREL_VM_ARGS),
    startStatusFile: nonEmpty(env.NODEREL_START_STATUS),
    reexec: Boolean(env.NODEREL_REEXEC),
    listenFds: /^[1-9]\d{0,3}$/.test(env.NODEREL_LISTEN_FDS ?? '') ? Number(env.NODEREL_LISTEN_FDS) : 0,
    hupReopensLogs: env.NODEREL_HUP === 'reopen_logs',
    workerIndex: Number(env.NODEREL_WORKER_INDEX ?? 0),
    gcAfterBoot: env.NODEREL_GC_AFTER_BOOT !== '0',
    hermetic: env.NODEREL_HERMETIC !== '0',
    logRotation: { maxBytes: env.RUNNER_LOG_MAX_BYTES, generations: env.RUNNER_LOG_GENERATIONS, mode: env.RUNNER_LOG_MODE },
  };
}

/** A worker's environment: its master's, with its slot and the master's log level now. */
export function workerEnv(index: number, logLevel: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...withoutListenFds(env), NODEREL_WORKER_INDEX: String(index), NODEREL_LOG_LEVEL: logLevel };
}

/** The environment without `NODEREL_LISTEN_FDS`: the passed sockets are the node's, no child's to take. */
function withoutListenFds(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODEREL_LISTEN_FDS: _taken, ...rest } = env;
  return rest;
}

/** A USR2 successor's environment (through `bin/<name> reexec`): the node's own, as a successor. */
export function successorEnv(nodeType: string, nodeName: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...withoutListenFds(env), REL: nodeType, NODE_NAME: nodeName, NODEREL_REEXEC: '1' };
}

/** The operator's `-- ARGS` for the program app, kept for workers and successors (`programArgs`). */
export function setProgramArgs(env: NodeJS.ProcessEnv, args: readonly string[]): void {
  env.NODEREL_PROGRAM_ARGS = JSON.stringify(args);
}

/** `escript`: the release root for the script's environment, as the launcher would give it. */
export function defaultRootInto(env: NodeJS.ProcessEnv): void {
  env.NODEREL_ROOT ||= defaultRoot();
}

export interface LaunchEnv extends LaunchSettings {
  /** Absolute release root. */
  readonly root: string;
  /** `NODEREL_REL_NAME`, when set (else the manifest's name). */
  readonly relName: string | undefined;
  readonly relVsn: string;
  /** `NODEREL_NODE_TYPE`, when set (else the manifest's default). */
  readonly nodeType: string | undefined;
  readonly releaseTmp: string;
  readonly logDir: string;
  /**
   * `NODEREL_PROGRAM_ARGS` (a JSON list): what the operator gave after `--` (`bin/<name>
   * foreground -- ARGS`), appended to the program app's configured args. Kept in the
   * environment so that a USR2 successor and a master's workers run the program the same way.
   */
  readonly programArgs: readonly string[];
  /** `NODEREL_CONTROL_PORT` (`[HOST:]PORT`): the node also answers on this TCP port. */
  readonly controlPort: string | undefined;
  /**
   * TLS on the TCP control port (control-tls.ts): the node's certificate and key
   * (`NODEREL_CONTROL_TLS_CERT`, `NODEREL_CONTROL_TLS_KEY`), and for a client of `--remote` the CA
   * file that must have signed it and the name it must carry (`NODEREL_CONTROL_TLS_CA`,
   * `NODEREL_CONTROL_TLS_SERVERNAME`). Files, PEM.
   */
  readonly controlTls: {
    readonly certFile: string | undefined;
    readonly keyFile: string | undefined;
    readonly caFile: string | undefined;
    readonly servername: string | undefined;
  };
}

/** `<root>` for a boot.js at `<root>/lib/noderel-<vsn>/boot.js`. */
export function defaultRoot(): string {
  return resolve(import.meta.dirname, '..', '..');
}

export function readLaunchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv {
  const root = resolve(nonEmpty(env.NODEREL_ROOT) ?? defaultRoot());
  return {
    ...readLaunchSettings(env),
    root,
    relName: nonEmpty(env.NODEREL_REL_NAME),
    relVsn: nonEmpty(env.NODEREL_REL_VSN) ?? readStartDataVsn(root),
    nodeType: nonEmpty(env.NODEREL_NODE_TYPE),
    releaseTmp: resolve(nonEmpty(env.RELEASE_TMP) ?? releasePath(root, TMP_DIR)),
    logDir: resolve(nonEmpty(env.RUNNER_LOG_DIR) ?? releasePath(root, LOG_DIR)),
    programArgs: parseProgramArgs(env.NODEREL_PROGRAM_ARGS),
    controlPort: nonEmpty(env.NODEREL_CONTROL_PORT),
    controlTls: {
      certFile: nonEmpty(env.NODEREL_CONTROL_TLS_CERT),
      keyFile: nonEmpty(env.NODEREL_CONTROL_TLS_KEY),
      caFile: nonEmpty(env.NODEREL_CONTROL_TLS_CA),
      servername: nonEmpty(env.NODEREL_CONTROL_TLS_SERVERNAME),
    },
  };
}

/** The node name when the launcher gave none: `<node type>@<short hostname>`. */
export function nodeNameFor(launch: LaunchEnv, nodeType: string): string {
  return launch.nodeName ?? `${nodeType}@${hostname().split('.')[0]}`;
}

function parseProgramArgs(raw: string | undefined): string[] {
  if (raw === undefined || raw === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value) || !value.every((a) => typeof a === 'string')) {
    throw new BootError('EENV', `NODEREL_PROGRAM_ARGS must be a JSON list of strings, found ${JSON.stringify(raw)}; pass a program's arguments after --: bin/<name> foreground -- ARGS`);
  }
  return value as string[];
}

function readStartDataVsn(root: string): string {
  const file = releasePath(root, START_DATA);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new BootError('EENV', `NODEREL_REL_VSN is not set and ${file} is missing; start the node with bin/<name> or set NODEREL_REL_VSN`);
  }
  const vsn = text.trim().split(/\s+/)[1];
  if (!vsn) throw new BootError('EENV', `${file}: expected "<node_vsn> <rel_vsn>", found ${JSON.stringify(text.trim())}`);
  return vsn;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
