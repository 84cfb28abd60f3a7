/**
 * What the launcher (`bin/<name>`) tells the node through the environment (ARCHITECTURE.md,
 * "The launcher environment"). Values it may leave out are derived the way the launcher would:
 * the root from where this file lives (`<root>/lib/noderel-<vsn>/`), the release version from
 * `releases/start.data`, run state and logs under the root. The node type and name need the
 * manifest and are settled by `manifest.ts` (`selectNodeType`) and `nodeNameFor`.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { BootError } from './errors.js';

export interface LaunchEnv {
  /** Absolute release root. */
  readonly root: string;
  /** `NODEREL_REL_NAME`, when set (else the manifest's name). */
  readonly relName: string | undefined;
  readonly relVsn: string;
  /** `NODEREL_NODE_TYPE`, when set (else the manifest's default). */
  readonly nodeType: string | undefined;
  /** `NODEREL_NODE_NAME`, when set (else `<type>@<hostname>`). */
  readonly nodeName: string | undefined;
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
    root,
    relName: nonEmpty(env.NODEREL_REL_NAME),
    relVsn: nonEmpty(env.NODEREL_REL_VSN) ?? readStartDataVsn(root),
    nodeType: nonEmpty(env.NODEREL_NODE_TYPE),
    nodeName: nonEmpty(env.NODEREL_NODE_NAME),
    releaseTmp: resolve(nonEmpty(env.RELEASE_TMP) ?? join(root, 'tmp')),
    logDir: resolve(nonEmpty(env.RUNNER_LOG_DIR) ?? join(root, 'log')),
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
  const file = join(root, 'releases', 'start.data');
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
