/**
 * The release manifest, `releases/<vsn>/release.json` (ARCHITECTURE.md): its JSON shape
 * ({@link ManifestJson}, what the build writes: release/model.ts), and the one reader and
 * validator ({@link readManifest}, {@link parseManifest}) that gives the runtime's view of it
 * ({@link Manifest}: readonly, absolute paths, defaults filled in: `ready: at_once`,
 * `start_timeout_ms: 60000`, process name = node type). Boot, upgrade and the build's removal
 * of stale files read it through here; the launcher reads release.env, made from the same
 * manifest (contract/release-env.ts). Every problem is reported, with its key path, in one line.
 * Node built-ins only: this module ships in every release.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { manifestFile, releasePath } from './layout.js';

/** How a program app says it is ready, as written in release.json. */
export type ReadyJson =
  | { readonly type: 'at_once' }
  | { readonly type: 'port'; readonly port: number; readonly host?: string }
  | { readonly type: 'output'; readonly pattern: string };

export interface ManifestAppJson {
  readonly version: string;
  /** Relative to the release root: `lib/<app>-<vsn>`. */
  readonly dir: string;
  readonly type: 'module' | 'program';
  /** Relative to `dir`. */
  readonly entry: string;
  readonly ready: ReadyJson;
  readonly start_timeout_ms: number;
  /** Programs only: arguments (`${VAR}` substituted at launch) and working directory. */
  readonly args?: readonly string[];
  readonly cwd?: string;
}

export interface NodeTypeJson {
  readonly apps: readonly string[];
  readonly workers: number;
  readonly process_name: string;
}

/** release.json as the build writes it. */
export interface ManifestJson {
  readonly name: string;
  readonly version: string;
  readonly node_version: string;
  readonly node_target?: string;
  readonly noderel_version: string;
  readonly default_node_type: string;
  readonly sys_config_src: boolean;
  /** Only with `sys_config_src`: where the sys.config.src had an unquoted `${VAR}` value. */
  readonly sys_config_typed?: readonly (readonly (string | number)[])[];
  readonly apps: Readonly<Record<string, ManifestAppJson>>;
  readonly node_types: Readonly<Record<string, NodeTypeJson>>;
  /** Hook name -> its file, relative to the release root. */
  readonly hooks?: Readonly<Record<string, string>>;
}

export type Readiness =
  | { readonly type: 'at_once' }
  | { readonly type: 'port'; readonly port: number; readonly host: string }
  | { readonly type: 'output'; readonly pattern: RegExp };

/**
 * An app's fields, as the build resolves it (config/resolve.ts `ResolvedApp`: `dir` its source
 * directory, `entry` relative to it, `ready` as configured) and as the runtime reads it from
 * release.json ({@link AppSpec}: `dir` and `entry` absolute in the release, `ready` compiled).
 */
export interface AppFields<TReady> {
  readonly name: string;
  readonly version: string;
  /** `module`: exports start/stop; `program`: a plain Node program run as the main module. */
  readonly type: 'module' | 'program';
  readonly dir: string;
  readonly entry: string;
  /** How a program app says it is ready (module apps: their `start` resolves). */
  readonly ready: TReady;
  readonly startTimeoutMs: number;
  /** A program's arguments (`process.argv.slice(2)`), `${VAR}` substituted when the node starts; empty for module apps. */
  readonly args: readonly string[];
  /** A program's working directory: relative to its `dir` in the release, or absolute; `${VAR}` substituted when the node starts. */
  readonly cwd: string;
}

/** An app of the release at run time: `dir` and `entry` absolute. */
export type AppSpec = AppFields<Readiness>;

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

/** A manifest that cannot be read (`missing`: no such file), is not JSON, or is not a manifest. */
export class ManifestError extends Error {
  readonly code = 'EMANIFEST';

  constructor(message: string, readonly reason: 'missing' | 'json' | 'invalid') {
    super(message);
    this.name = 'ManifestError';
  }
}

/** The absolute path of a version's release.json. */
export function manifestPath(root: string, vsn: string): string {
  return releasePath(root, manifestFile(vsn));
}

/** Reads and validates `releases/<vsn>/release.json` under `root`; throws a {@link ManifestError}. */
export function readManifest(root: string, vsn: string): Manifest {
  const file = manifestPath(root, vsn);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ManifestError(`${file}: ${missing ? `no release ${vsn} in ${root}` : (err as Error).message}`, missing ? 'missing' : 'invalid');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(`${file}: ${(err as Error).message}`, 'json');
  }
  return parseManifest(raw, root, file);
}

type At = (p: string, msg: string) => void;

/** Validates and normalizes a parsed release.json; `root` makes app paths absolute. */
export function parseManifest(raw: unknown, root: string, file: string): Manifest {
  const problems: string[] = [];
  const at: At = (p, msg) => void problems.push(`${p}: ${msg}`);
  const obj = isObject(raw) ? raw : (at('(top)', 'expected an object'), {});
  const apps = parseEntries(obj.apps, 'apps', 'expected an object of app name -> app', true, at, (name, a, p) => parseApp(name, a, p, root, at));
  const nodeTypes = parseEntries(obj.node_types, 'node_types', 'expected an object of node type -> {apps, workers, process_name}', false, at, (name, t, p) =>
    parseNodeType(name, t, p, apps, at),
  );
  const defaultNodeType = str(obj, 'default_node_type', 'default_node_type', at);
  if (defaultNodeType && nodeTypes.size > 0 && !nodeTypes.has(defaultNodeType)) {
    at('default_node_type', `unknown node type ${JSON.stringify(defaultNodeType)}; known: ${[...nodeTypes.keys()].join(', ')}`);
  }
  const manifest: Manifest = {
    file,
    name: str(obj, 'name', 'name', at),
    version: str(obj, 'version', 'version', at),
    nodeVersion: typeof obj.node_version === 'string' ? obj.node_version : '',
    noderelVersion: typeof obj.noderel_version === 'string' ? obj.noderel_version : '',
    defaultNodeType,
    sysConfigSrc: obj.sys_config_src === true,
    sysConfigTyped: sysConfigTyped(obj.sys_config_typed, at),
    apps,
    nodeTypes,
  };
  if (problems.length > 0) throw new ManifestError(`${file}: ${problems.join('; ')}`, 'invalid');
  return manifest;
}

function str(o: Record<string, unknown>, key: string, p: string, at: At): string {
  const v = o[key];
  if (typeof v === 'string' && v !== '') return v;
  at(p, v === undefined ? 'missing' : `expected a non-empty string, found ${JSON.stringify(v)}`);
  return '';
}

/**
 * An object of name -> object (`apps`, `node_types`), each entry read by `parseOne` with its key
 * path; `expected` is the problem when it is not an object (or, unless `mayBeEmpty`, is empty).
 */
function parseEntries<T>(
  raw: unknown,
  key: string,
  expected: string,
  mayBeEmpty: boolean,
  at: At,
  parseOne: (name: string, o: Record<string, unknown>, p: string) => T,
): Map<string, T> {
  const out = new Map<string, T>();
  if (!isObject(raw) || (!mayBeEmpty && Object.keys(raw).length === 0)) {
    at(key, expected);
    return out;
  }
  for (const [name, o] of Object.entries(raw)) {
    const p = `${key}.${name}`;
    if (isObject(o)) out.set(name, parseOne(name, o, p));
    else at(p, 'expected an object');
  }
  return out;
}

function parseApp(name: string, a: Record<string, unknown>, p: string, root: string, at: At): AppSpec {
  const type = a.type ?? 'module';
  if (type !== 'module' && type !== 'program') at(`${p}.type`, `expected "module" or "program", found ${JSON.stringify(type)}`);
  const timeout = a.start_timeout_ms ?? DEFAULT_START_TIMEOUT_MS;
  if (typeof timeout !== 'number' || !(timeout > 0)) at(`${p}.start_timeout_ms`, `expected a positive number, found ${JSON.stringify(timeout)}`);
  const dir = resolve(root, str(a, 'dir', `${p}.dir`, at));
  return {
    name,
    version: str(a, 'version', `${p}.version`, at),
    type: type === 'program' ? 'program' : 'module',
    dir,
    entry: resolve(dir, str(a, 'entry', `${p}.entry`, at)),
    ready: parseReadiness(a.ready, `${p}.ready`, at),
    startTimeoutMs: typeof timeout === 'number' ? timeout : DEFAULT_START_TIMEOUT_MS,
    args: parseArgs(a.args, `${p}.args`, at),
    cwd: a.cwd === undefined ? '.' : typeof a.cwd === 'string' && a.cwd !== '' ? a.cwd : (at(`${p}.cwd`, 'expected a directory'), '.'),
  };
}

function parseNodeType(name: string, t: Record<string, unknown>, p: string, apps: ReadonlyMap<string, AppSpec>, at: At): NodeTypeSpec {
  const list: unknown[] = Array.isArray(t.apps) ? t.apps : (at(`${p}.apps`, 'expected a list of app names'), []);
  list.forEach((app, i) => {
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
  return {
    name,
    apps: list.filter((a): a is string => typeof a === 'string'),
    workers: typeof workers === 'number' ? workers : 0,
    processName: typeof processName === 'string' && processName ? processName : name,
  };
}

/** `sys_config_typed`: absent is none; otherwise a list of paths, each a list of keys and indexes. */
function sysConfigTyped(raw: unknown, at: At): (string | number)[][] {
  if (raw === undefined) return [];
  const isPath = (p: unknown): p is (string | number)[] =>
    Array.isArray(p) && p.length > 0 && p.every((k) => typeof k === 'string' || (typeof k === 'number' && Number.isInteger(k) && k >= 0));
  if (!Array.isArray(raw) || !raw.every(isPath)) {
    at('sys_config_typed', 'expected a list of paths (lists of keys and indexes)');
    return [];
  }
  return raw;
}

function parseArgs(raw: unknown, p: string, at: At): string[] {
  if (raw === undefined) return [];
  if (Array.isArray(raw) && raw.every((a) => typeof a === 'string')) return raw as string[];
  at(p, 'expected a list of strings');
  return [];
}

function parseReadiness(raw: unknown, p: string, at: At): Readiness {
  if (raw === undefined) return { type: 'at_once' };
  if (!isObject(raw)) {
    at(p, 'expected {type: at_once | port | output}');
    return { type: 'at_once' };
  }
  switch (raw.type) {
    case 'at_once':
      return { type: 'at_once' };
    case 'port':
      return portReadiness(raw, p, at);
    case 'output':
      return outputReadiness(raw, p, at);
    default:
      at(`${p}.type`, `expected "at_once", "port" or "output", found ${JSON.stringify(raw.type)}`);
      return { type: 'at_once' };
  }
}

function portReadiness(raw: Record<string, unknown>, p: string, at: At): Readiness {
  const port = raw.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) {
    at(`${p}.port`, `expected a TCP port, found ${JSON.stringify(port)}`);
  }
  const host = raw.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') at(`${p}.host`, 'expected a host name or address');
  return { type: 'port', port: typeof port === 'number' ? port : 0, host: typeof host === 'string' ? host : '127.0.0.1' };
}

function outputReadiness(raw: Record<string, unknown>, p: string, at: At): Readiness {
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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
