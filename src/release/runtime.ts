/**
 * The pinned Node runtime (relx's ERTS): either the Node that runs the build (`system`) or an
 * exact version fetched from the npm registry as the `node-<os>-<arch>` package, verified
 * against its sha512 integrity and cached under `<cacheDir>/runtimes/node-v<vsn>-<target>/`.
 *
 * The fetch goes through the user's own `npm` so registry, proxy and auth settings apply. A
 * valid cache entry is used without running npm at all, so builds work offline once the
 * runtime has been fetched. Also here: the set of command-line flags a runtime accepts, used
 * to check vm.args at build time, and the runtime's C/C++ headers (`include/node/`), which
 * `--rebuild-addons` compiles against.
 *
 * A cache entry holds `bin/node`, `LICENSE` and `meta.json`; `include/` (about 60 MB, 2700
 * files) is added to it the first time headers are needed ({@link runtimeHeaders}), from the
 * same verified package, so builds that never rebuild addons never store them, and entries
 * written before headers were kept stay valid.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { NoderelError } from '../errors.js';
import { displayPath, type Reporter } from '../reporter.js';
import type { FlagType } from '../config/vm-args.js';
import { hostTarget, KNOWN_TARGETS } from '../targets.js';

/** What the config pins: `system`, or an exact version and an optional target. */
export interface RuntimePin {
  /** `system` or an exact `X.Y.Z`. */
  version: string;
  /** `linux-x64`, `linux-arm64`, `darwin-arm64`, `win-x64`, ...; default: the host's. */
  target?: string;
}

/** A resolved runtime, ready to be copied into a release. */
export interface Runtime {
  /** `22.23.3`, no leading `v`. */
  version: string;
  /** `linux-x64`. */
  target: string;
  /** Absolute path of the node binary to copy (in the cache, or `process.execPath` for system). */
  binaryPath: string;
  /** Absolute path of Node's LICENSE when available (shipped next to `bin/`). */
  licensePath?: string;
  /** NODE_MODULE_VERSION, e.g. 127 for Node 22. */
  modulesAbi: number;
  /** True when the target is this host's, so the binary can be executed here. */
  runnable: boolean;
  source: 'system' | 'registry';
  /** The cache entry directory of a registry runtime. */
  cacheEntry?: string;
}

export interface ResolveRuntimeOptions {
  /** Root of noderel's cache; default {@link defaultCacheDir}. */
  cacheDir?: string;
  reporter: Reporter;
  /** The npm executable; default `npm` from PATH. */
  npm?: string;
  /** Never run npm: use the cache or fail. */
  offline?: boolean;
  /** Where npm runs, so a project `.npmrc` applies; default `process.cwd()`. */
  cwd?: string;
}

/** NODE_MODULE_VERSION of each Node major (https://github.com/nodejs/node/blob/main/doc/abi_version_registry.json). */
const MODULES_ABI_BY_MAJOR: ReadonlyMap<number, number> = new Map([
  [14, 83], [15, 88], [16, 93], [17, 102], [18, 108], [19, 111],
  [20, 115], [21, 120], [22, 127], [23, 131], [24, 137], [25, 141],
]);

/** The Node major that uses a NODE_MODULE_VERSION, when known (for messages). */
export function nodeMajorForAbi(abi: number): number | undefined {
  for (const [major, a] of MODULES_ABI_BY_MAJOR) if (a === abi) return major;
  return undefined;
}

const VERSION_RE = /^\d+\.\d+\.\d+$/;
const TARGET_RE = /^[a-z0-9]+-[a-z0-9]+$/;

/** `$NODEREL_CACHE_DIR`, else `$XDG_CACHE_HOME/noderel`, else `~/.cache/noderel`. */
export function defaultCacheDir(): string {
  if (process.env.NODEREL_CACHE_DIR) return path.resolve(process.env.NODEREL_CACHE_DIR);
  if (process.env.XDG_CACHE_HOME) return path.resolve(process.env.XDG_CACHE_HOME, 'noderel');
  return path.join(os.homedir(), '.cache', 'noderel');
}

/**
 * Resolve a runtime pin: `system` is the running Node; an exact version is taken from the
 * cache when a valid entry exists (no npm call), otherwise fetched through npm, verified and
 * cached. Throws a {@link NoderelError} for a bad pin, an unpublished version or target, a
 * network failure or an integrity mismatch.
 */
export async function resolveRuntime(pin: RuntimePin, opts: ResolveRuntimeOptions): Promise<Runtime> {
  if (pin.version === 'system') return systemRuntime(pin.target);
  const version = checkVersion(pin.version);
  const target = checkTarget(pin.target ?? hostTarget());
  const cacheDir = path.resolve(opts.cacheDir ?? defaultCacheDir());
  const entry = runtimeEntryDir(cacheDir, version, target);
  const cached = await readCacheEntry(entry, version, target);
  if (cached.runtime) {
    opts.reporter.step(`using cached node ${version} (${target})`);
    return cached.runtime;
  }
  if (cached.problem) opts.reporter.warn(`cached runtime ${displayPath(entry)} ${cached.problem}; fetching it again`);
  if (opts.offline) {
    throw new NoderelError('ERUNTIME', `runtime: node ${version} (${target}) is not in the runtime cache (${displayPath(entry)}) and offline mode is on`, {
      hint: 'build once online to fetch it, or pin runtime.version: system',
    });
  }
  const npm: NpmContext = { npm: opts.npm ?? 'npm', cwd: opts.cwd ?? process.cwd(), entry, reporter: opts.reporter };
  return fetchRuntime(npm, version, target, entry);
}

// ---------------------------------------------------------------------------------------------
// system runtime and pin validation

function systemRuntime(target: string | undefined): Runtime {
  const host = hostTarget();
  if (target !== undefined && target !== host) {
    throw new NoderelError('ERUNTIME', `runtime.target: ${target} needs an exact runtime.version; "system" is the Node running the build (${host})`, {
      hint: 'pin an exact version such as 22.23.3 to build for another target',
    });
  }
  return {
    version: process.versions.node,
    target: host,
    binaryPath: process.execPath,
    licensePath: systemLicense(process.execPath),
    modulesAbi: Number(process.versions.modules),
    runnable: true,
    source: 'system',
  };
}

/** Node's LICENSE next to an installed binary (official tarball or `share/doc` layout). */
function systemLicense(execPath: string): string | undefined {
  const prefix = path.resolve(path.dirname(execPath), '..');
  const candidates = [path.join(prefix, 'LICENSE'), path.join(prefix, 'share', 'doc', 'node', 'LICENSE')];
  return candidates.find((p) => existsSync(p));
}

function checkVersion(version: string): string {
  if (VERSION_RE.test(version)) return version;
  throw new NoderelError('ERUNTIME', `runtime.version: "${version}" is not an exact Node version`, {
    hint: 'use "system" or an exact version such as 22.23.3 (no ranges, no leading v)',
  });
}

function checkTarget(target: string): string {
  if (TARGET_RE.test(target)) return target;
  throw new NoderelError('ERUNTIME', `runtime.target: "${target}" is not a target name`, {
    hint: `use <os>-<arch>, one of ${KNOWN_TARGETS.join(', ')}`,
  });
}

// ---------------------------------------------------------------------------------------------
// the cache entry: bin/node, LICENSE, meta.json

interface RuntimeMeta {
  version: string;
  target: string;
  integrity: string;
  binarySha256: string;
  modulesAbi: number;
}

function runtimeEntryDir(cacheDir: string, version: string, target: string): string {
  return path.join(cacheDir, 'runtimes', `node-v${version}-${target}`);
}

function binaryName(target: string): string {
  return target.startsWith('win-') ? 'node.exe' : 'node';
}

/** A valid cached runtime, or why the entry cannot be used (nothing when there is no entry). */
async function readCacheEntry(entry: string, version: string, target: string): Promise<{ runtime?: Runtime; problem?: string }> {
  if (!existsSync(entry)) return {};
  const meta = await readMeta(path.join(entry, 'meta.json'));
  if (!meta || meta.version !== version || meta.target !== target) return { problem: 'is incomplete (bad or missing meta.json)' };
  const binaryPath = path.join(entry, 'bin', binaryName(target));
  if (!existsSync(binaryPath)) return { problem: `is incomplete (no bin/${binaryName(target)})` };
  if ((await hashFile(binaryPath, 'sha256')).toString('hex') !== meta.binarySha256) return { problem: 'is corrupt (sha256 mismatch)' };
  return { runtime: registryRuntime(entry, meta) };
}

async function readMeta(file: string): Promise<RuntimeMeta | undefined> {
  try {
    const m = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<RuntimeMeta>;
    const ok = typeof m.version === 'string' && typeof m.target === 'string' && typeof m.integrity === 'string'
      && typeof m.binarySha256 === 'string' && Number.isInteger(m.modulesAbi);
    return ok ? (m as RuntimeMeta) : undefined;
  } catch {
    return undefined;
  }
}

function registryRuntime(entry: string, meta: RuntimeMeta): Runtime {
  const license = path.join(entry, 'LICENSE');
  return {
    version: meta.version,
    target: meta.target,
    binaryPath: path.join(entry, 'bin', binaryName(meta.target)),
    licensePath: existsSync(license) ? license : undefined,
    modulesAbi: meta.modulesAbi,
    runnable: meta.target === hostTarget(),
    source: 'registry',
    cacheEntry: entry,
  };
}

// ---------------------------------------------------------------------------------------------
// headers (include/node), for node-gyp's --nodedir

/**
 * A directory holding the runtime's `include/node/` (with `node_version.h` and `common.gypi`),
 * to give node-gyp as `--nodedir`. For a registry runtime: its cache entry, where the headers of
 * its npm package are extracted on first need (the package comes again through `npm pack`,
 * from npm's own cache when it is still there, and is verified against the integrity recorded
 * at the first fetch). For `system`: the installation prefix of the running Node when it has
 * headers there; undefined when it has none (node-gyp then uses npm's `nodedir` setting or
 * downloads them).
 */
export async function runtimeHeaders(rt: Runtime, opts: ResolveRuntimeOptions): Promise<string | undefined> {
  if (rt.source === 'system') {
    const prefix = path.resolve(path.dirname(rt.binaryPath), '..');
    return (await headersProblem(prefix, rt.modulesAbi)) === undefined ? prefix : undefined;
  }
  const entry = rt.cacheEntry ?? path.resolve(path.dirname(rt.binaryPath), '..');
  if ((await headersProblem(entry, rt.modulesAbi)) === undefined) return entry;
  const meta = await readMeta(path.join(entry, 'meta.json'));
  if (!meta) throw new NoderelError('ERUNTIME', `runtime: the cache entry ${displayPath(entry)} has no meta.json`, { hint: 'remove it and build again' });
  if (opts.offline) {
    throw new NoderelError('ERUNTIME', `runtime: the headers of node ${rt.version} (${rt.target}) are not in the runtime cache (${displayPath(entry)}) and offline mode is on`, {
      hint: 'build once online with --rebuild-addons to fetch them',
    });
  }
  const pkg = `node-${rt.target}`;
  const ctx: NpmContext = { npm: opts.npm ?? 'npm', cwd: opts.cwd ?? process.cwd(), entry, reporter: opts.reporter };
  opts.reporter.step(`fetching the headers of node ${rt.version} (${rt.target})`);
  const tmp = await fs.mkdtemp(path.join(path.dirname(entry), `.tmp-${path.basename(entry)}-include-`));
  try {
    const tgz = await npmPack(ctx, pkg, rt.version, tmp);
    await verifyIntegrity(tgz, meta.integrity, `${pkg}@${rt.version}`);
    const stage = path.join(tmp, 'stage');
    await fs.mkdir(stage);
    await tar.x({ file: tgz, cwd: stage, strip: 1, filter: (p) => p.split('/')[1] === 'include' });
    const problem = await headersProblem(stage, rt.modulesAbi);
    if (problem) throw new NoderelError('ERUNTIME', `runtime: ${pkg}@${rt.version} ${problem}`, { hint: 'rebuilding addons needs a runtime package that ships its headers; pin another version' });
    try {
      await fs.rename(path.join(stage, 'include'), path.join(entry, 'include'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another build put them there first; a broken copy is replaced.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      if ((await headersProblem(entry, rt.modulesAbi)) !== undefined) {
        await fs.rm(path.join(entry, 'include'), { recursive: true, force: true });
        await fs.rename(path.join(stage, 'include'), path.join(entry, 'include'));
      }
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return entry;
}

/** Why `dir/include/node` is not usable headers for a runtime of `modulesAbi`; undefined when it is. */
async function headersProblem(dir: string, modulesAbi: number): Promise<string | undefined> {
  const inc = path.join(dir, 'include', 'node');
  const version = await fs.readFile(path.join(inc, 'node_version.h'), 'utf8').catch(() => undefined);
  if (version === undefined) return 'has no include/node/node_version.h';
  if (!existsSync(path.join(inc, 'common.gypi'))) return 'has no include/node/common.gypi';
  const m = /^#define NODE_MODULE_VERSION (\d+)\s*$/m.exec(version);
  if (!m || Number(m[1]) !== modulesAbi) return `has headers of another NODE_MODULE_VERSION (${m?.[1] ?? 'none'}, expected ${modulesAbi})`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// fetching through npm

interface NpmContext {
  npm: string;
  cwd: string;
  /** The cache entry being filled, for the "works offline once cached" hint. */
  entry: string;
  reporter: Reporter;
}

/**
 * `npm view` for the integrity, `npm pack` into a temp dir beside the entry, verify, extract
 * what the release needs, then rename the staged entry into place (never a partial entry).
 */
async function fetchRuntime(ctx: NpmContext, version: string, target: string, entry: string): Promise<Runtime> {
  const pkg = `node-${target}`;
  const integrity = await viewIntegrity(ctx, pkg, version, target);
  ctx.reporter.step(`fetching node ${version} (${target})`);
  await fs.mkdir(path.dirname(entry), { recursive: true });
  const tmp = await fs.mkdtemp(path.join(path.dirname(entry), `.tmp-${path.basename(entry)}-`));
  try {
    const tgz = await npmPack(ctx, pkg, version, tmp);
    await verifyIntegrity(tgz, integrity, `${pkg}@${version}`);
    const stage = path.join(tmp, 'entry');
    const meta = await stageEntry(tgz, stage, { version, target, integrity });
    await moveIntoPlace(stage, entry, version, target);
    return registryRuntime(entry, meta);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** The sha512 integrity of `<pkg>@<version>`, or a clear error when it is not published. */
async function viewIntegrity(ctx: NpmContext, pkg: string, version: string, target: string): Promise<string> {
  const res = await runNpm(ctx, ['view', `${pkg}@${version}`, 'dist.integrity', 'dist.tarball', '--json']);
  if (res.error) {
    if (res.error.code === 'E404') throw await notPublished(ctx, pkg, version, target);
    throw npmFailed(ctx, res.error, `npm view ${pkg}@${version}`);
  }
  const out = parseJson(res.stdout);
  if (out === undefined || out === '') throw await notPublished(ctx, pkg, version, target);
  const integrity = typeof out === 'string' ? out : (out as Record<string, unknown>)['dist.integrity'];
  if (typeof integrity !== 'string' || !integrity.includes('sha512-')) {
    throw new NoderelError('EINTEGRITY', `runtime: the registry gives no sha512 integrity for ${pkg}@${version}`, {
      hint: 'check the registry (npm config get registry) or pin another version',
    });
  }
  return integrity;
}

/** Download the package tarball with `npm pack`; returns its path. */
async function npmPack(ctx: NpmContext, pkg: string, version: string, dest: string): Promise<string> {
  const stopProgress = await watchDownload(ctx, `node ${version}`);
  const res = await runNpm(ctx, ['pack', `${pkg}@${version}`, '--pack-destination', dest, '--json']);
  if (res.error) {
    stopProgress();
    throw npmFailed(ctx, res.error, `npm pack ${pkg}@${version}`);
  }
  const out = parseJson(res.stdout);
  const filename = Array.isArray(out) ? (out[0] as { filename?: unknown } | undefined)?.filename : undefined;
  const tgz = typeof filename === 'string' ? path.join(dest, filename) : undefined;
  if (!tgz || !existsSync(tgz)) {
    stopProgress();
    throw new NoderelError('ENPM', `runtime: npm pack ${pkg}@${version} wrote no tarball into ${dest}`, { hint: 'run it by hand to see why' });
  }
  stopProgress((await fs.stat(tgz)).size);
  return tgz;
}

/**
 * Progress for the download: npm streams it into its cache's `_cacache/tmp/` before moving
 * it into place, so the bytes written there since we started are the bytes downloaded so far.
 * (npm reports no progress of its own; the total is not known before the download ends.)
 */
async function watchDownload(ctx: NpmContext, label: string): Promise<(finalBytes?: number) => void> {
  const res = await runNpm(ctx, ['config', 'get', 'cache']);
  const tmpDir = res.error ? undefined : path.join(res.stdout.trim(), '_cacache', 'tmp');
  if (!tmpDir) return () => {};
  const since = Date.now();
  let shown = 0;
  const poll = async (): Promise<void> => {
    let bytes = 0;
    for (const name of await fs.readdir(tmpDir).catch(() => [] as string[])) {
      const st = await fs.stat(path.join(tmpDir, name)).catch(() => undefined);
      if (st?.isFile() && st.mtimeMs >= since - 1000) bytes += st.size;
    }
    if (bytes > shown) {
      shown = bytes;
      ctx.reporter.progress(label, bytes, 0);
    }
  };
  const timer = setInterval(() => void poll(), 200);
  return (finalBytes) => {
    clearInterval(timer);
    const total = finalBytes ?? shown;
    if (shown > 0 || finalBytes) ctx.reporter.progress(label, total, total);
  };
}

/** Check a tarball against an SRI string (any of its sha512 entries must match). */
async function verifyIntegrity(file: string, integrity: string, what: string): Promise<void> {
  const actual = (await hashFile(file, 'sha512')).toString('base64');
  const expected = integrity.split(/\s+/).filter((s) => s.startsWith('sha512-')).map((s) => s.slice(7).split('?')[0]);
  if (expected.includes(actual)) return;
  throw new NoderelError('EINTEGRITY', `runtime: the downloaded ${what} does not match its registry integrity (expected ${integrity}, got sha512-${actual}); nothing was cached`, {
    hint: 'retry; if it persists your registry or proxy serves a different file (npm cache verify)',
  });
}

/** Extract bin/node, LICENSE and node_version.h into `stage` and write meta.json. */
async function stageEntry(tgz: string, stage: string, pin: { version: string; target: string; integrity: string }): Promise<RuntimeMeta> {
  const bin = `bin/${binaryName(pin.target)}`;
  const headerFile = 'include/node/node_version.h';
  const wanted = new Set([bin, 'LICENSE', headerFile]);
  await fs.mkdir(stage, { recursive: true });
  await tar.x({ file: tgz, cwd: stage, strip: 1, filter: (p) => wanted.has(p.split('/').slice(1).join('/')) });
  const binary = path.join(stage, bin);
  if (!existsSync(binary)) {
    throw new NoderelError('ERUNTIME', `runtime: node-${pin.target}@${pin.version} has no ${bin}`, { hint: 'pin another version or target' });
  }
  const modulesAbi = await readModulesAbi(path.join(stage, headerFile), pin.version, binary, pin.target);
  await fs.rm(path.join(stage, 'include'), { recursive: true, force: true });
  const meta: RuntimeMeta = { ...pin, binarySha256: (await hashFile(binary, 'sha256')).toString('hex'), modulesAbi };
  await fs.writeFile(path.join(stage, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  return meta;
}

/**
 * NODE_MODULE_VERSION of a fetched runtime: from its `node_version.h`; packages without headers
 * (the Windows ones) fall back to running the binary when it is runnable, then to the table.
 */
async function readModulesAbi(header: string, version: string, binary: string, target: string): Promise<number> {
  const text = await fs.readFile(header, 'utf8').catch(() => '');
  const m = /^#define NODE_MODULE_VERSION (\d+)\s*$/m.exec(text);
  if (m) return Number(m[1]);
  if (target === hostTarget()) {
    const out = await run(binary, ['-p', 'process.versions.modules']);
    if (/^\d+$/.test(out.trim())) return Number(out.trim());
  }
  const fromTable = MODULES_ABI_BY_MAJOR.get(Number(version.split('.')[0]));
  if (fromTable !== undefined) return fromTable;
  throw new NoderelError('ERUNTIME', `runtime: cannot tell the NODE_MODULE_VERSION of node ${version} (${target}): the package has no node_version.h`, {
    hint: 'pin a version whose package ships headers, or build on that target',
  });
}

/**
 * Rename the staged directory to `entry`. An entry already there is kept when valid (a
 * concurrent build put it there) and replaced when not (a corrupt one being refetched).
 */
async function moveIntoPlace(stage: string, entry: string, version: string, target: string): Promise<void> {
  try {
    await fs.rename(stage, entry);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
  if ((await readCacheEntry(entry, version, target)).runtime) return;
  await fs.rm(entry, { recursive: true, force: true });
  await fs.rename(stage, entry);
}

// ---------------------------------------------------------------------------------------------
// npm errors

interface NpmError {
  code: string;
  summary: string;
}

const NETWORK_CODES = new Set([
  'ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'ENETUNREACH',
  'EHOSTUNREACH', 'ENETDOWN', 'EPIPE', 'ERR_SOCKET_TIMEOUT', 'ENOTCACHED', 'FETCH_ERROR', 'EPROTO',
]);

/** Run npm; a non-zero exit becomes `error` (npm's `--json` error code and summary). */
async function runNpm(ctx: NpmContext, args: string[]): Promise<{ stdout: string; error?: NpmError }> {
  return new Promise((resolve, reject) => {
    execFile(ctx.npm, args, { cwd: ctx.cwd, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout });
      if (typeof err.code === 'string') {
        return reject(new NoderelError('ENPM', `runtime: could not run npm (${ctx.npm}): ${err.code}`, {
          hint: 'install npm (it fetches the pinned runtime), or pin runtime.version: system',
        }));
      }
      resolve({ stdout, error: npmErrorOf(stdout, stderr) });
    });
  });
}

function npmErrorOf(stdout: string, stderr: string): NpmError {
  const json = parseJson(stdout) as { error?: { code?: unknown; summary?: unknown } } | undefined;
  const e = json && typeof json === 'object' ? json.error : undefined;
  const code = typeof e?.code === 'string' ? e.code : /npm error code (\S+)/.exec(stderr)?.[1] ?? 'EUNKNOWN';
  const summary = typeof e?.summary === 'string' ? e.summary : stderr.split('\n').find((l) => l.startsWith('npm error ')) ?? 'npm failed';
  return { code, summary: summary.split('\n')[0]! };
}

function npmFailed(ctx: NpmContext, e: NpmError, what: string): NoderelError {
  if (NETWORK_CODES.has(e.code) || /network|socket|getaddrinfo|proxy/i.test(e.summary)) {
    return new NoderelError('ENETWORK', `runtime: ${what} failed: cannot reach the npm registry (${e.code}: ${e.summary})`, {
      hint: `check the network and npm's registry/proxy settings (npm config get registry); once fetched, a runtime is used from the cache (${displayPath(ctx.entry)}) without the network`,
    });
  }
  return new NoderelError('ENPM', `runtime: ${what} failed (${e.code}: ${e.summary})`, { hint: 'run the same npm command by hand to see why' });
}

/** The error for an E404: either the target's package does not exist, or not that version. */
async function notPublished(ctx: NpmContext, pkg: string, version: string, target: string): Promise<NoderelError> {
  const res = await runNpm(ctx, ['view', pkg, 'versions', '--json']);
  if (res.error?.code === 'E404') {
    return new NoderelError('ERUNTIME', `runtime.target: Node builds for ${target} are not published on the npm registry (no package ${pkg})`, {
      hint: `use one of the known targets: ${KNOWN_TARGETS.join(', ')}`,
    });
  }
  if (res.error) return npmFailed(ctx, res.error, `npm view ${pkg} versions`);
  const out = parseJson(res.stdout);
  const published = (Array.isArray(out) ? out : [out]).filter((v): v is string => typeof v === 'string' && VERSION_RE.test(v));
  const sameMajor = published.some((v) => v.split('.')[0] === version.split('.')[0]);
  return new NoderelError('ERUNTIME', `runtime.version: Node ${version} is not published as ${pkg} on the npm registry; ${describePublished(version, published)}`, {
    hint: sameMajor ? 'pin one of those versions' : `pin another version, or another target (${KNOWN_TARGETS.join(', ')})`,
  });
}

/** `published 22.x: 22.23.1, 22.23.2, 22.23.3`: the versions of that major nearest the request. */
export function describePublished(version: string, published: readonly string[], count = 5): string {
  const major = version.split('.')[0];
  const same = published.filter((v) => v.split('.')[0] === major).sort(compareVersions);
  if (same.length === 0) {
    const majors = [...new Set(published.map((v) => Number(v.split('.')[0])))].sort((a, b) => a - b);
    return majors.length === 0 ? 'no versions are published' : `no ${major}.x is published; published majors: ${majors.join(', ')}`;
  }
  const at = same.findIndex((v) => compareVersions(v, version) > 0);
  const pivot = at === -1 ? same.length : at;
  const start = Math.max(0, Math.min(pivot - Math.ceil(count / 2), same.length - count));
  return `published ${major}.x: ${same.slice(start, start + count).join(', ')}`;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// runtime flags

/**
 * The command-line option names the runtime accepts (`--max-old-space-size`, `-r`,
 * `--enable-source-maps`, ...), canonical form: `_` written as `-`, no `=value`. Node options
 * come from `node --help` and `process.allowedNodeEnvironmentFlags`, V8 options from
 * `node --v8-options` (boolean V8 options also as `--no-x`). Cached in
 * `<cacheDir>/flags/<version>-<target>.json`.
 *
 * When the runtime is not runnable on this host (another target), the host Node's list is
 * used instead: an approximation, exact only when the host runs the same Node version.
 */
export async function runtimeFlags(rt: Runtime, cacheDir: string = defaultCacheDir()): Promise<Set<string>> {
  const probe = rt.runnable ? rt : systemRuntime(undefined);
  const file = path.join(path.resolve(cacheDir), 'flags', `${probe.version}-${probe.target}.json`);
  const cached = await readFlagsFile(file);
  if (cached) return cached;
  const flags = await probeFlags(probe.binaryPath);
  await writeFileAtomic(file, `${JSON.stringify([...flags].sort(), null, 1)}\n`);
  return flags;
}

/**
 * Whether a flag as written in vm.args is known: `--max-old-space-size=512`, `--stack_size=2000`
 * (underscores are dashes to Node), `-r`, `--no-warnings`. A `--no-x` is accepted when `--x` is
 * known (Node negates its boolean options that way).
 */
export function isKnownFlag(flags: Set<string>, flag: string): boolean {
  const name = canonicalFlag(flag.split('=', 1)[0]!);
  if (flags.has(name)) return true;
  return name.startsWith('--no-') && flags.has(`--${name.slice(5)}`);
}

function canonicalFlag(name: string): string {
  return name.startsWith('--') ? `--${name.slice(2).replace(/_/g, '-')}` : name;
}

/**
 * The type of each option of the runtime that takes (or refuses) a value, by canonical name:
 * V8's from `node --v8-options` (`v8:int`, `v8:size_t`, `v8:bool`, ...) and Node's own from its
 * option table (`node:uint`, `node:string`, `node:bool`, ...; read through `--expose-internals`,
 * skipped when that fails), V8's winning for an option both know (Node hands it to V8). Aliases
 * (`-r`) have their target's type; an alias that applies to `name=value` only is keyed `name=`.
 * Cached in `<cacheDir>/flags/<version>-<target>.types.json`; the host Node's for a runtime that
 * cannot run here, as for {@link runtimeFlags}.
 */
export async function runtimeFlagTypes(rt: Runtime, cacheDir: string = defaultCacheDir()): Promise<Map<string, FlagType>> {
  const probe = rt.runnable ? rt : systemRuntime(undefined);
  const file = path.join(path.resolve(cacheDir), 'flags', `${probe.version}-${probe.target}.types.json`);
  try {
    const cached = JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
    if (cached !== null && typeof cached === 'object' && !Array.isArray(cached) && Object.keys(cached).length > 0) {
      return new Map(Object.entries(cached as Record<string, FlagType>));
    }
  } catch {
    // missing or unreadable: probe again
  }
  const [v8, node] = await Promise.all([
    run(probe.binaryPath, ['--v8-options']),
    run(probe.binaryPath, ['--expose-internals', '-e', NODE_OPTION_TYPES_PROBE]).catch(() => ''),
  ]);
  const types = new Map([...parseNodeOptionTypes(node), ...parseV8OptionTypes(v8)]);
  await writeFileAtomic(file, `${JSON.stringify(Object.fromEntries([...types].sort(([a], [b]) => (a < b ? -1 : 1))), null, 1)}\n`);
  return types;
}

/**
 * Prints Node's option table as JSON: `{ types: {name: typeCode}, aliases: {alias: [expansion]},
 * anchors: {...} }`. The numeric type codes are Node's internal enum; the anchors (options whose
 * kind is known) tell which code means what, so a reordered enum cannot mislead the check.
 */
const NODE_OPTION_TYPES_PROBE = `
const o = require('internal/options');
const info = typeof o.getCLIOptionsInfo === 'function' ? o.getCLIOptionsInfo() : undefined;
if (!info) process.exit(1);
const types = {};
for (const [name, v] of info.options) types[name] = v.type;
const aliases = {};
for (const [name, v] of info.aliases) aliases[name] = v;
process.stdout.write(JSON.stringify({ types, aliases }));
`;

/** Options whose kind is known in every Node that has the option table: they name the enum codes. */
const NODE_TYPE_ANCHORS: readonly [string, FlagType][] = [
  ['--max-http-header-size', 'node:uint'],
  ['--heapsnapshot-near-heap-limit', 'node:int'],
  ['--title', 'node:string'],
  ['--require', 'node:string'],
  ['--inspect-port', 'node:string'],
  ['--enable-source-maps', 'node:bool'],
  ['--expose-gc', 'v8:other'], // Node's "handed to V8" code: the V8 type applies
];

/** The option types from the output of {@link NODE_OPTION_TYPES_PROBE}; nothing when it is not that. */
export function parseNodeOptionTypes(text: string): Map<string, FlagType> {
  const out = new Map<string, FlagType>();
  const parsed = parseJson(text) as { types?: Record<string, number>; aliases?: Record<string, string[]> } | undefined;
  if (!parsed?.types || typeof parsed.types !== 'object') return out;
  const kindOf = new Map<number, FlagType>();
  for (const [name, kind] of NODE_TYPE_ANCHORS) {
    const code = parsed.types[name];
    if (typeof code === 'number' && !kindOf.has(code)) kindOf.set(code, kind);
  }
  for (const [name, code] of Object.entries(parsed.types)) {
    const kind = kindOf.get(code);
    if (kind && kind !== 'v8:other') out.set(canonicalFlag(name), kind);
  }
  for (const [alias, expansion] of Object.entries(parsed.aliases ?? {})) {
    if (!Array.isArray(expansion) || alias.includes(' ')) continue;
    // `--inspect=` (with a value) expands to `--inspect-port <value> --inspect`: the first takes it.
    const target = alias.endsWith('=') || expansion.length === 1 ? expansion[0] : undefined;
    const kind = target === undefined ? undefined : out.get(canonicalFlag(target));
    if (kind) out.set(alias.endsWith('=') ? `${canonicalFlag(alias.slice(0, -1))}=` : canonicalFlag(alias), kind);
  }
  return out;
}

/** The type of each option in `node --v8-options`: `v8:bool` (bool, maybe_bool), `v8:int`, `v8:size_t`, ... */
export function parseV8OptionTypes(text: string): Map<string, FlagType> {
  const out = new Map<string, FlagType>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    const name = /^ {2}(--[\w-]+)/.exec(line)?.[1];
    if (name) {
      last = canonicalFlag(name);
      continue;
    }
    const type = /^\s+type: (\w+)/.exec(line)?.[1];
    if (!last || !type) continue;
    out.set(last, V8_TYPES.has(type) ? (`v8:${type === 'maybe_bool' ? 'bool' : type}` as FlagType) : 'v8:other');
    last = undefined;
  }
  return out;
}

const V8_TYPES = new Set(['bool', 'maybe_bool', 'int', 'uint', 'uint64', 'size_t', 'float', 'string']);

async function readFlagsFile(file: string): Promise<Set<string> | undefined> {
  try {
    const list = JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
    if (Array.isArray(list) && list.length > 0 && list.every((f) => typeof f === 'string')) return new Set(list as string[]);
  } catch {
    // missing or unreadable: probe again
  }
  return undefined;
}

async function probeFlags(binary: string): Promise<Set<string>> {
  const [help, v8, env] = await Promise.all([
    run(binary, ['--help']),
    run(binary, ['--v8-options']),
    run(binary, ['-p', 'JSON.stringify([...process.allowedNodeEnvironmentFlags])']),
  ]);
  const fromEnv = (parseJson(env) as string[] | undefined) ?? [];
  return new Set([...parseNodeHelp(help), ...parseV8Options(v8), ...fromEnv.map(canonicalFlag)]);
}

/** Option names from `node --help`: the option column of lines like `  -r, --require=...   text`. */
export function parseNodeHelp(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const column = /^ {2}(-\S.*?)(?: {2,}|$)/.exec(line)?.[1];
    if (!column) continue;
    for (const m of column.matchAll(/(?<![\w-])(--?[A-Za-z0-9][\w-]*)/g)) out.push(canonicalFlag(m[1]!));
  }
  return out;
}

/** Option names from `node --v8-options`; boolean ones (`type: bool`) also as `--no-x`. */
export function parseV8Options(text: string): string[] {
  const out: string[] = [];
  let last: string | undefined;
  for (const line of text.split('\n')) {
    const name = /^ {2}(--[\w-]+)/.exec(line)?.[1];
    if (name) {
      last = canonicalFlag(name);
      out.push(last);
    } else if (last && /^\s+type: (bool|maybe_bool)\b/.test(line)) {
      out.push(`--no-${last.slice(2)}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// small file and process helpers

async function hashFile(file: string, algorithm: 'sha256' | 'sha512'): Promise<Buffer> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest();
}

async function writeFileAtomic(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.writeFile(tmp, text);
  await fs.rename(tmp, file);
}

/** Run a runtime binary (without the user's NODE_OPTIONS) and return its stdout. */
function run(binary: string, args: string[]): Promise<string> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return new Promise((resolve, reject) => {
    execFile(binary, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
