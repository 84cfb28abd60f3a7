/**
 * Turns the loaded user config into one readonly `ResolvedConfig`, in a fixed order:
 * defaults <- relx.config <- relx.config.script <- CLI flags. Validation never stops at the first
 * problem: every one is collected with its key path and all are reported in one run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Problems } from '../errors.js';
import { displayPath } from '../reporter.js';
import { isInside, PROTECTED_DIRS } from '../paths.js';
import { RELEASE_TARGETS } from '../targets.js';
import type { AppFields, NodeTypeSpec } from '../contract/manifest.js';
import type { LoadedConfig, UserConfig } from './load.js';

export type Ready =
  | { readonly type: 'at_once' }
  | { readonly type: 'port'; readonly port: number; readonly host: string }
  | { readonly type: 'output'; readonly pattern: string };

/**
 * An app as configured (contract/manifest.ts `AppFields`, shared with the runtime's view): `dir`
 * the absolute path of its source directory (holds its package.json), `entry` relative to it.
 */
export type ResolvedApp = AppFields<Ready>;

/** A node type: its apps, workers and process name, as release.json carries them to the runtime. */
export type ResolvedNodeType = NodeTypeSpec;

export type Overlay =
  | { readonly op: 'mkdir'; readonly to: string }
  | { readonly op: 'copy'; readonly from: string; readonly to: string }
  | { readonly op: 'template'; readonly from: string; readonly to: string };

export interface RuntimeConfig {
  readonly version: string;
  readonly target?: string;
}

export interface ResolvedConfig {
  readonly root: string;
  readonly name: string;
  readonly version: string;
  readonly apps: readonly ResolvedApp[];
  readonly nodeTypes: readonly ResolvedNodeType[];
  readonly defaultNodeType: string;
  readonly runtime: RuntimeConfig;
  /** Absolute paths, or undefined when the release has none. */
  readonly vmArgs?: string;
  readonly sysConfig?: string;
  readonly outputDir: string;
  readonly overlays: readonly Overlay[];
  /** Hook name -> absolute script path (pre_start, post_start, pre_stop, post_stop, status). */
  readonly hooks: Readonly<Record<string, string>>;
}

export interface CliOverrides {
  outputDir?: string;
  relVersion?: string;
  runtime?: string;
  target?: string;
  /** Allow an output directory outside the project. */
  force?: boolean;
}

export const KNOWN_KEYS = [
  'release', 'apps', 'node_types', 'default_node_type', 'runtime', 'vm_args', 'sys_config',
  'output_dir', 'overlays', 'hooks',
] as const;
/** relx's extended start script hooks; the launcher runs them (docs/commands.md, "Hooks"). */
export const HOOK_NAMES = ['pre_start', 'post_start', 'pre_stop', 'post_stop', 'status'] as const;
const NAME_RE = /^[A-Za-z][A-Za-z0-9_-]*$/;
const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z.+_-]*$/;
const DEFAULT_START_TIMEOUT_MS = 60_000;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const describe = (v: unknown): string =>
  v === null ? 'null' : v === undefined ? 'nothing' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : JSON.stringify(v);

function readPackageJson(dir: string): Obj | undefined {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    return isObj(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function resolveReady(raw: unknown, at: string, problems: Problems): Ready {
  if (raw === undefined || raw === 'at_once') return { type: 'at_once' };
  if (isObj(raw)) {
    if (raw.port !== undefined) {
      const port = Number(raw.port);
      if (!Number.isInteger(port) || port < 1 || port > 65535) problems.add(`${at}.port`, `expected a TCP port 1-65535, found ${describe(raw.port)}`);
      return { type: 'port', port, host: typeof raw.host === 'string' ? raw.host : '127.0.0.1' };
    }
    if (raw.output !== undefined) {
      const pattern = String(raw.output);
      try {
        new RegExp(pattern);
      } catch (err) {
        problems.add(`${at}.output`, `invalid pattern: ${(err as Error).message}`);
      }
      return { type: 'output', pattern };
    }
  }
  problems.add(at, `expected at_once, {port: N} or {output: "pattern"}, found ${describe(raw)}`);
  return { type: 'at_once' };
}

/** A program app's `args` (a list of strings) and `cwd` (a path); module apps take neither. */
function resolveProgramRun(spec: Obj, type: unknown, at: string, problems: Problems): { args: string[]; cwd: string } {
  let args: string[] = [];
  if (spec.args !== undefined) {
    if (!Array.isArray(spec.args) || spec.args.some((a) => a === null || typeof a === 'object')) {
      problems.add(`${at}.args`, `expected a list of arguments, e.g. args: [public, -p, "\${PORT:-8080}"], found ${describe(spec.args)}`);
    } else args = spec.args.map(String);
  }
  let cwd = '.';
  if (spec.cwd !== undefined) {
    if (typeof spec.cwd !== 'string' || spec.cwd === '') problems.add(`${at}.cwd`, `expected a directory (relative to the app's directory in the release, or absolute), found ${describe(spec.cwd)}`);
    else cwd = spec.cwd;
  }
  if (type === 'module') {
    for (const key of ['args', 'cwd'] as const) {
      if (spec[key] !== undefined) problems.add(`${at}.${key}`, `only a program app takes ${key} (a module app is started by its start(ctx)); set type: program or remove ${key}`);
    }
  }
  return { args, cwd };
}

function resolveApps(raw: unknown, root: string, problems: Problems): ResolvedApp[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    problems.add('apps', `expected a non-empty list of app paths, found ${describe(raw)}; e.g. apps: [apps/myapp]`);
    return [];
  }
  const apps: ResolvedApp[] = [];
  raw.forEach((item: unknown, i) => {
    const at = `apps[${i}]`;
    const spec: Obj = typeof item === 'string' ? { path: item } : isObj(item) ? item : {};
    if (typeof spec.path !== 'string' || spec.path === '') {
      problems.add(at, `expected a path or {path: ...}, found ${describe(item)}`);
      return;
    }
    const dir = path.resolve(root, spec.path);
    const pkg = readPackageJson(dir);
    if (!pkg) {
      problems.add(`${at}.path`, `${displayPath(dir)} has no readable package.json; point it at the app's directory`);
      return;
    }
    const name = typeof spec.name === 'string' ? spec.name : String(pkg.name ?? '').replace(/^@[^/]+\//, '');
    if (!NAME_RE.test(name)) problems.add(`${at}.name`, `invalid app name "${name}"; use letters, digits, _ and -`);
    const version = String(spec.version ?? pkg.version ?? '');
    if (!VERSION_RE.test(version)) problems.add(`${at}.version`, `app ${name} has no valid version (found "${version}"); set "version" in ${displayPath(path.join(dir, 'package.json'))}`);
    const type = spec.type ?? 'module';
    if (type !== 'module' && type !== 'program') problems.add(`${at}.type`, `expected module or program, found ${describe(type)}`);
    const entry = String(spec.entry ?? pkg.main ?? 'index.js');
    if (!fs.existsSync(path.join(dir, entry))) problems.add(`${at}.entry`, `${displayPath(path.join(dir, entry))} does not exist; set entry (or "main" in package.json)`);
    const timeout = spec.start_timeout === undefined ? DEFAULT_START_TIMEOUT_MS : Number(spec.start_timeout);
    if (!Number.isFinite(timeout) || timeout <= 0) problems.add(`${at}.start_timeout`, `expected milliseconds > 0, found ${describe(spec.start_timeout)}`);
    if (apps.some((a) => a.name === name)) problems.add(`${at}.name`, `duplicate app "${name}"; every app may be listed once`);
    const { args, cwd } = resolveProgramRun(spec, type, at, problems);
    apps.push({
      name,
      version,
      dir,
      type: type === 'program' ? 'program' : 'module',
      entry,
      ready: resolveReady(spec.ready, `${at}.ready`, problems),
      startTimeoutMs: timeout,
      args,
      cwd,
    });
  });
  return apps;
}

function resolveNodeTypes(raw: unknown, appNames: string[], problems: Problems): ResolvedNodeType[] {
  // Accepted shapes: {name: {apps, workers, process_name}}, {name: [apps]}, or [{name, apps, ...}].
  let entries: [string, unknown, string][] = [];
  if (Array.isArray(raw)) {
    entries = raw.map((v: unknown, i) => [isObj(v) ? String(v.name ?? '') : '', v, `node_types[${i}]`]);
  } else if (isObj(raw)) {
    entries = Object.entries(raw).map(([k, v]) => [k, v, `node_types.${k}`]);
  }
  if (entries.length === 0) {
    problems.add('node_types', `expected at least one node type, e.g. node_types: {${appNames[0] ?? 'web'}: {apps: [${appNames.join(', ')}]}}`);
    return [];
  }
  const types: ResolvedNodeType[] = [];
  for (const [name, value, at] of entries) {
    if (!NAME_RE.test(name)) {
      problems.add(at, `invalid node type name "${name}"; use letters, digits, _ and -`);
      continue;
    }
    if (types.some((t) => t.name === name)) {
      problems.add(at, `duplicate node type "${name}"; each node type may be declared once`);
      continue;
    }
    const spec: Obj = Array.isArray(value) ? { apps: value } : isObj(value) ? value : {};
    const apps = Array.isArray(spec.apps) ? spec.apps.map(String) : [];
    if (apps.length === 0) problems.add(`${at}.apps`, `expected a non-empty list of apps; known: ${appNames.join(', ')}`);
    apps.forEach((a, i) => {
      if (!appNames.includes(a)) problems.add(`${at}.apps[${i}]`, `unknown app "${a}"; known: ${appNames.join(', ')}`);
    });
    const workers = spec.workers === undefined ? 0 : Number(spec.workers);
    if (!Number.isInteger(workers) || workers < 0 || workers > 256) problems.add(`${at}.workers`, `expected an integer 0-256, found ${describe(spec.workers)}`);
    const processName = spec.process_name === undefined ? name : String(spec.process_name);
    if (!/^[\w.@-]{1,64}$/.test(processName)) problems.add(`${at}.process_name`, `invalid process name "${processName}"; use letters, digits, _ . @ and -`);
    types.push({ name, apps, workers, processName });
  }
  return types;
}

function resolveRuntime(raw: unknown, flags: CliOverrides, problems: Problems): RuntimeConfig {
  let version: unknown = 'system';
  let target: unknown;
  if (typeof raw === 'string' || typeof raw === 'number') version = String(raw);
  else if (isObj(raw)) ({ version, target } = raw);
  else if (raw !== undefined) problems.add('runtime', `expected "system", a version or {version, target}, found ${describe(raw)}`);
  if (flags.runtime) version = flags.runtime;
  if (flags.target) target = flags.target;
  const v = String(version ?? '').replace(/^v/, '');
  if (v !== 'system' && !/^\d+\.\d+\.\d+$/.test(v)) {
    problems.add('runtime.version', `expected "system" or an exact version like 22.23.3, found ${describe(version)}`);
  }
  if (target !== undefined && (typeof target !== 'string' || !RELEASE_TARGETS.includes(target))) {
    problems.add('runtime.target', `unknown target ${describe(target)}; known: ${RELEASE_TARGETS.join(', ')}`);
  }
  if (target !== undefined && v === 'system') problems.add('runtime.target', 'a target needs an exact runtime version (system copies the running Node)');
  return target === undefined ? { version: v } : { version: v, target: String(target) };
}

function resolveFile(raw: unknown, key: string, root: string, defaults: string[], problems: Problems): string | undefined {
  if (raw === undefined) return defaults.map((d) => path.join(root, d)).find((f) => fs.existsSync(f));
  if (raw === false || raw === null) return undefined;
  if (typeof raw !== 'string') {
    problems.add(key, `expected a file path, found ${describe(raw)}`);
    return undefined;
  }
  const file = path.resolve(root, raw);
  if (!fs.existsSync(file)) problems.add(key, `${displayPath(file)} does not exist`);
  return file;
}

/**
 * Where an overlay may write under the protected directories (PROTECTED_DIRS): only mkdir in
 * tmp/ and log/ (run state and logs are the nodes'), in lib/ only inside this release's app
 * directories, in releases/ only inside releases/<vsn>/, and never a file in place of one of
 * them. Undefined when the destination is fine.
 */
function protectedDestinationProblem(o: Overlay, version: string, appDirs: readonly string[]): string | undefined {
  const { op, to } = o;
  const top = to.split('/')[0]!;
  if (!(PROTECTED_DIRS as readonly string[]).includes(top) || (to === top && op === 'mkdir')) return undefined;
  const inside = (dir: string) => to === dir || to.startsWith(`${dir}/`);
  if (top === 'tmp' || top === 'log') {
    if (op === 'mkdir') return undefined;
    const what = top === 'tmp' ? "the nodes' run state (pid files, control sockets)" : "the nodes' logs";
    return `${op} to ${to}: ${top}/ holds ${what} and no build writes there; an overlay may only mkdir in ${top}/`;
  }
  if (to === top && o.op !== 'mkdir' && !(fs.existsSync(o.from) && fs.statSync(o.from).isDirectory())) {
    return `${op} to ${to}: a file would replace the directory ${top}/; name a path inside it`;
  }
  if (top === 'lib' && !appDirs.some(inside)) {
    return `${to} is not inside an app of this release (${appDirs.join(', ')}); lib/ holds the apps of every installed version`;
  }
  if (top === 'releases' && !inside(`releases/${version}`)) {
    return `${to} is not inside releases/${version}/; releases/ holds the installed versions and the cookie`;
  }
  return undefined;
}

function resolveOverlays(raw: unknown, root: string, version: string, apps: readonly ResolvedApp[], problems: Problems): Overlay[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    problems.add('overlays', `expected a list, found ${describe(raw)}`);
    return [];
  }
  const appDirs = apps.map((a) => `lib/${a.name}-${a.version}`);
  const out: Overlay[] = [];
  raw.forEach((item: unknown, i) => {
    const at = `overlays[${i}]`;
    if (!isObj(item)) return problems.add(at, `expected {mkdir: dir} or {copy|template: {from, to}}, found ${describe(item)}`);
    // One spelling per path (`log/`, `./log` and `log` are one directory), so that the plan
    // can tell what an overlay's destination is.
    const dest = (to: unknown): string | undefined => {
      const norm = typeof to === 'string' ? path.posix.normalize(to.replace(/\\/g, '/')).replace(/\/+$/, '') : '';
      if (typeof to !== 'string' || to === '' || path.isAbsolute(to) || to.split(/[\\/]/).includes('..') || norm === '.' || norm === '') {
        problems.add(at, `destination ${describe(to)} must be a relative path inside the release`);
        return undefined;
      }
      return norm;
    };
    const add = (o: Overlay) => {
      const problem = protectedDestinationProblem(o, version, appDirs);
      if (problem) problems.add(at, problem);
      else out.push(o);
    };
    if (item.mkdir !== undefined) {
      const to = dest(item.mkdir);
      if (to) add({ op: 'mkdir', to });
      return;
    }
    for (const op of ['copy', 'template'] as const) {
      const spec = item[op];
      if (spec === undefined) continue;
      if (!isObj(spec) || typeof spec.from !== 'string') return problems.add(`${at}.${op}`, 'expected {from, to}');
      const from = path.resolve(root, spec.from);
      if (!fs.existsSync(from)) problems.add(`${at}.${op}.from`, `${displayPath(from)} does not exist`);
      const to = dest(spec.to ?? spec.from);
      if (to) add({ op, from, to });
      return;
    }
    problems.add(at, `unknown overlay ${Object.keys(item).join(', ')}; known: mkdir, copy, template`);
  });
  return out;
}

function resolveHooks(raw: unknown, root: string, problems: Problems): Record<string, string> {
  if (raw === undefined) return {};
  if (!isObj(raw)) {
    problems.add('hooks', `expected a mapping of ${HOOK_NAMES.join(', ')} to script paths, found ${describe(raw)}`);
    return {};
  }
  const hooks: Record<string, string> = {};
  for (const [name, file] of Object.entries(raw)) {
    if (!(HOOK_NAMES as readonly string[]).includes(name)) {
      problems.add(`hooks.${name}`, `unknown hook; known: ${HOOK_NAMES.join(', ')}`);
      continue;
    }
    const abs = resolveFile(file, `hooks.${name}`, root, [], problems);
    if (abs) hooks[name] = abs;
  }
  return hooks;
}

/** Applies defaults and CLI flags to the loaded config and validates all of it at once. */
export function resolveConfig(loaded: LoadedConfig, flags: CliOverrides = {}): ResolvedConfig {
  const { root, config } = loaded;
  const problems = new Problems();
  for (const key of Object.keys(config)) {
    if (!(KNOWN_KEYS as readonly string[]).includes(key)) problems.add(key, `unknown key; known: ${KNOWN_KEYS.join(', ')}`);
  }
  const release: Obj = isObj(config.release) ? config.release : {};
  if (!isObj(config.release)) problems.add('release', `expected {name, version}, found ${describe(config.release)}`);
  const name = String(release.name ?? '');
  if (!NAME_RE.test(name)) problems.add('release.name', `expected a name of letters, digits, _ and - (found ${describe(release.name)})`);
  const version = flags.relVersion ?? (release.version === undefined || release.version === null ? '' : String(release.version));
  if (version.trim() === '') problems.add('release.version', 'must not be empty; set e.g. version: 1.0.0 (or pass --rel-version)');
  else if (!VERSION_RE.test(version)) problems.add('release.version', `"${version}" is not a valid version; use letters, digits and . + _ -`);

  const apps = resolveApps(config.apps, root, problems);
  const nodeTypes = resolveNodeTypes(config.node_types, apps.map((a) => a.name), problems);
  const defaultNodeType = config.default_node_type === undefined ? nodeTypes[0]?.name ?? '' : String(config.default_node_type);
  if (nodeTypes.length > 0 && !nodeTypes.some((t) => t.name === defaultNodeType)) {
    problems.add('default_node_type', `unknown node type "${defaultNodeType}"; known: ${nodeTypes.map((t) => t.name).join(', ')}`);
  }
  const runtime = resolveRuntime(config.runtime, flags, problems);
  const vmArgs = resolveFile(config.vm_args, 'vm_args', root, ['rel/vm.args'], problems);
  const sysConfig = resolveFile(config.sys_config, 'sys_config', root, ['rel/sys.config', 'rel/sys.config.src'], problems);
  const outputDir = path.resolve(root, flags.outputDir ?? (typeof config.output_dir === 'string' ? config.output_dir : '_rel'));
  if (!isInside(root, outputDir) && !flags.force) {
    problems.add('output_dir', `${outputDir} is outside the project (${root}); pass --force to build there`);
  }
  if (outputDir === root || isInside(outputDir, root)) {
    problems.add('output_dir', `${displayPath(outputDir)} would contain the project itself; choose a subdirectory such as _rel`);
  }
  const overlays = resolveOverlays(config.overlays, root, version, apps, problems);
  const hooks = resolveHooks(config.hooks, root, problems);
  problems.throwIfAny('ECONFIG', `invalid release config (${loaded.sources.map((s) => displayPath(s)).join(' + ')})`);
  return Object.freeze({ root, name, version, apps, nodeTypes, defaultNodeType, runtime, vmArgs, sysConfig, outputDir, overlays, hooks });
}

/** The final config as `noderel config` prints it: plain data, paths relative to the project. */
export function configToPlain(c: ResolvedConfig): UserConfig {
  const rel = (p: string) => path.relative(c.root, p) || '.';
  return {
    release: { name: c.name, version: c.version },
    apps: c.apps.map((a) => ({
      name: a.name,
      version: a.version,
      path: rel(a.dir),
      type: a.type,
      entry: a.entry,
      ready: a.ready.type === 'at_once' ? 'at_once' : a.ready.type === 'port' ? { port: a.ready.port, host: a.ready.host } : { output: a.ready.pattern },
      start_timeout: a.startTimeoutMs,
      ...(a.type === 'program' ? { args: [...a.args], cwd: a.cwd } : {}),
    })),
    node_types: Object.fromEntries(c.nodeTypes.map((t) => [t.name, { apps: [...t.apps], workers: t.workers, process_name: t.processName }])),
    default_node_type: c.defaultNodeType,
    runtime: c.runtime.target ? { version: c.runtime.version, target: c.runtime.target } : { version: c.runtime.version },
    vm_args: c.vmArgs ? rel(c.vmArgs) : null,
    sys_config: c.sysConfig ? rel(c.sysConfig) : null,
    output_dir: rel(c.outputDir),
    overlays: c.overlays.map((o) => (o.op === 'mkdir' ? { mkdir: o.to } : { [o.op]: { from: rel(o.from), to: o.to } })),
    hooks: Object.fromEntries(Object.entries(c.hooks).map(([k, v]) => [k, rel(v)])),
  };
}
