/**
 * The release manifest, `releases/<vsn>/release.json` (ARCHITECTURE.md), read once at boot into
 * a readonly model with defaults filled in (`ready: at_once`, `start_timeout_ms: 60000`, process
 * name = node type). The build already validated it; the checks here guard against a hand-edited
 * or truncated file and report every problem, with its key path, in one line.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BootError } from './errors.js';

export type Readiness =
  | { readonly type: 'at_once' }
  | { readonly type: 'port'; readonly port: number; readonly host: string }
  | { readonly type: 'output'; readonly pattern: RegExp };

export interface AppSpec {
  readonly name: string;
  readonly version: string;
  /** `module`: exports start/stop; `program`: a plain Node program run as the main module. */
  readonly type: 'module' | 'program';
  /** Absolute app directory and entry file. */
  readonly dir: string;
  readonly entry: string;
  /** How a program app says it is ready (module apps: their `start` resolves). */
  readonly ready: Readiness;
  readonly startTimeoutMs: number;
  /** A program's arguments, `${VAR}` not yet substituted (empty for module apps). */
  readonly args: readonly string[];
  /** A program's working directory as configured: relative to `dir`, or absolute; `${VAR}` not yet substituted. */
  readonly cwd: string;
}

export interface NodeTypeSpec {
  readonly name: string;
  readonly apps: readonly string[];
  readonly workers: number;
  readonly processName: string;
}

export interface Manifest {
  /** The file it was read from. */
  readonly file: string;
  readonly name: string;
  readonly version: string;
  readonly nodeVersion: string;
  readonly noderelVersion: string;
  readonly defaultNodeType: string;
  /** sys.config came from a sys.config.src: substitute `${VAR}` at launch. */
  readonly sysConfigSrc: boolean;
  /**
   * `sys_config_typed`: where the sys.config.src had an unquoted `${VAR}` value (app, key, ...):
   * its substituted text takes the type YAML gives it (a number, a boolean, null).
   */
  readonly sysConfigTyped: readonly (readonly (string | number)[])[];
  readonly apps: ReadonlyMap<string, AppSpec>;
  readonly nodeTypes: ReadonlyMap<string, NodeTypeSpec>;
}

export const DEFAULT_START_TIMEOUT_MS = 60_000;

export function manifestPath(root: string, vsn: string): string {
  return join(root, 'releases', vsn, 'release.json');
}

export function readManifest(root: string, vsn: string): Manifest {
  const file = manifestPath(root, vsn);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `no release ${vsn} in ${root}` : (err as Error).message;
    throw new BootError('EMANIFEST', `${file}: ${why}`);
  }
  return parseManifest(raw, root, file);
}

/** Validates and normalizes a parsed release.json; `root` makes app paths absolute. */
export function parseManifest(raw: unknown, root: string, file: string): Manifest {
  const problems: string[] = [];
  const at = (p: string, msg: string): void => void problems.push(`${p}: ${msg}`);
  const obj = isObject(raw) ? raw : (at('(top)', 'expected an object'), {});

  const str = (o: Record<string, unknown>, key: string, p: string): string => {
    const v = o[key];
    if (typeof v === 'string' && v !== '') return v;
    at(p, v === undefined ? 'missing' : `expected a non-empty string, found ${JSON.stringify(v)}`);
    return '';
  };

  const apps = new Map<string, AppSpec>();
  const rawApps = obj.apps;
  if (!isObject(rawApps)) at('apps', 'expected an object of app name -> app');
  else {
    for (const [name, a] of Object.entries(rawApps)) {
      const p = `apps.${name}`;
      if (!isObject(a)) {
        at(p, 'expected an object');
        continue;
      }
      const type = a.type ?? 'module';
      if (type !== 'module' && type !== 'program') at(`${p}.type`, `expected "module" or "program", found ${JSON.stringify(type)}`);
      const timeout = a.start_timeout_ms ?? DEFAULT_START_TIMEOUT_MS;
      if (typeof timeout !== 'number' || !(timeout > 0)) at(`${p}.start_timeout_ms`, `expected a positive number, found ${JSON.stringify(timeout)}`);
      const dir = resolve(root, str(a, 'dir', `${p}.dir`));
      apps.set(name, {
        name,
        version: str(a, 'version', `${p}.version`),
        type: type === 'program' ? 'program' : 'module',
        dir,
        entry: resolve(dir, str(a, 'entry', `${p}.entry`)),
        ready: parseReadiness(a.ready, `${p}.ready`, at),
        startTimeoutMs: typeof timeout === 'number' ? timeout : DEFAULT_START_TIMEOUT_MS,
        args: parseArgs(a.args, `${p}.args`, at),
        cwd: a.cwd === undefined ? '.' : typeof a.cwd === 'string' && a.cwd !== '' ? a.cwd : (at(`${p}.cwd`, 'expected a directory'), '.'),
      });
    }
  }

  const nodeTypes = new Map<string, NodeTypeSpec>();
  const rawTypes = obj.node_types;
  if (!isObject(rawTypes) || Object.keys(rawTypes).length === 0) at('node_types', 'expected an object of node type -> {apps, workers, process_name}');
  else {
    for (const [name, t] of Object.entries(rawTypes)) {
      const p = `node_types.${name}`;
      if (!isObject(t)) {
        at(p, 'expected an object');
        continue;
      }
      const list = Array.isArray(t.apps) ? t.apps : (at(`${p}.apps`, 'expected a list of app names'), []);
      list.forEach((app: unknown, i: number) => {
        if (typeof app !== 'string' || !apps.has(app)) {
          at(`${p}.apps[${i}]`, `unknown app ${JSON.stringify(app)}; known: ${[...apps.keys()].join(', ') || '(none)'}`);
        }
      });
      const workers = t.workers ?? 0;
      if (typeof workers !== 'number' || !Number.isInteger(workers) || workers < 0) {
        at(`${p}.workers`, `expected a whole number >= 0, found ${JSON.stringify(workers)}`);
      }
      const processName = t.process_name ?? name;
      if (typeof processName !== 'string' || processName === '') at(`${p}.process_name`, 'expected a non-empty string');
      nodeTypes.set(name, {
        name,
        apps: list.filter((a: unknown): a is string => typeof a === 'string'),
        workers: typeof workers === 'number' ? workers : 0,
        processName: typeof processName === 'string' && processName ? processName : name,
      });
    }
  }

  const defaultNodeType = str(obj, 'default_node_type', 'default_node_type');
  if (defaultNodeType && nodeTypes.size > 0 && !nodeTypes.has(defaultNodeType)) {
    at('default_node_type', `unknown node type ${JSON.stringify(defaultNodeType)}; known: ${[...nodeTypes.keys()].join(', ')}`);
  }
  const manifest: Manifest = {
    file,
    name: str(obj, 'name', 'name'),
    version: str(obj, 'version', 'version'),
    nodeVersion: typeof obj.node_version === 'string' ? obj.node_version : '',
    noderelVersion: typeof obj.noderel_version === 'string' ? obj.noderel_version : '',
    defaultNodeType,
    sysConfigSrc: obj.sys_config_src === true,
    sysConfigTyped: sysConfigTyped(obj.sys_config_typed, at),
    apps,
    nodeTypes,
  };
  if (problems.length > 0) throw new BootError('EMANIFEST', `${file}: ${problems.join('; ')}`);
  return manifest;
}

/** `sys_config_typed`: absent is none; otherwise a list of paths, each a list of keys and indexes. */
function sysConfigTyped(raw: unknown, at: (p: string, msg: string) => void): (string | number)[][] {
  if (raw === undefined) return [];
  const isPath = (p: unknown): p is (string | number)[] =>
    Array.isArray(p) && p.length > 0 && p.every((k) => typeof k === 'string' || (typeof k === 'number' && Number.isInteger(k) && k >= 0));
  if (!Array.isArray(raw) || !raw.every(isPath)) {
    at('sys_config_typed', 'expected a list of paths (lists of keys and indexes)');
    return [];
  }
  return raw;
}

/** The node type to run: `requested` (from `REL`) or the manifest's default. */
export function selectNodeType(manifest: Manifest, requested: string | undefined): NodeTypeSpec {
  const name = requested ?? manifest.defaultNodeType;
  const spec = manifest.nodeTypes.get(name);
  if (!spec) {
    throw new BootError(
      'ENODETYPE',
      `unknown node type ${JSON.stringify(name)}; known: ${[...manifest.nodeTypes.keys()].sort().join(', ')} (set REL to one of them)`,
    );
  }
  return spec;
}

function parseArgs(raw: unknown, p: string, at: (p: string, msg: string) => void): string[] {
  if (raw === undefined) return [];
  if (Array.isArray(raw) && raw.every((a) => typeof a === 'string')) return raw as string[];
  at(p, 'expected a list of strings');
  return [];
}

function parseReadiness(raw: unknown, p: string, at: (p: string, msg: string) => void): Readiness {
  if (raw === undefined) return { type: 'at_once' };
  if (!isObject(raw)) {
    at(p, 'expected {type: at_once | port | output}');
    return { type: 'at_once' };
  }
  switch (raw.type) {
    case 'at_once':
      return { type: 'at_once' };
    case 'port': {
      const port = raw.port;
      if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) {
        at(`${p}.port`, `expected a TCP port, found ${JSON.stringify(port)}`);
      }
      const host = raw.host ?? '127.0.0.1';
      if (typeof host !== 'string' || host === '') at(`${p}.host`, 'expected a host name or address');
      return { type: 'port', port: typeof port === 'number' ? port : 0, host: typeof host === 'string' ? host : '127.0.0.1' };
    }
    case 'output': {
      const source = raw.pattern;
      if (typeof source !== 'string' || source === '') {
        at(`${p}.pattern`, 'expected a RegExp source string');
        return { type: 'at_once' };
      }
      try {
        return { type: 'output', pattern: new RegExp(source) };
      } catch (err) {
        at(`${p}.pattern`, (err as Error).message);
        return { type: 'at_once' };
      }
    }
    default:
      at(`${p}.type`, `expected "at_once", "port" or "output", found ${JSON.stringify(raw.type)}`);
      return { type: 'at_once' };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
