// Native addon discovery and the ABI check. Fake `.node` files pin the byte-level rules; real
// addons compiled once with npm's bundled node-gyp (against the headers `npm config get nodedir`
// points at) prove them against what Node's own loader accepts.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonAbiOf, checkAddonAbi, findNativeAddons, type NativeAddon } from '../../src/release/native-addons.js';

const HOST_ABI = Number(process.versions.modules);

function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function write(file: string, content: string | Buffer): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

/** A fake shared object: some binary noise around the symbol name, as in a .dynstr table. */
function fakeAddon(symbol: string): Buffer {
  return Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(64), Buffer.from(`\0_init\0${symbol}\0memcpy\0`)]);
}

describe('addonAbiOf', () => {
  it('reads the ABI from node_register_module_v<N>', () => {
    expect(addonAbiOf(fakeAddon('node_register_module_v115'))).toBe(115);
    expect(addonAbiOf(fakeAddon('node_register_module_v127'))).toBe(127);
  });

  it('treats N-API addons as napi', () => {
    expect(addonAbiOf(fakeAddon('napi_register_module_v1'))).toBe('napi');
    expect(addonAbiOf(fakeAddon('napi_module_register'))).toBe('napi');
  });

  it('answers unknown when no symbol tells', () => {
    expect(addonAbiOf(fakeAddon('something_else'))).toBe('unknown');
    expect(addonAbiOf(Buffer.from('not an object file'))).toBe('unknown');
    expect(addonAbiOf(fakeAddon('node_module_register'))).toBe('unknown'); // legacy import, no readable symtab
  });
});

describe('findNativeAddons', () => {
  let root: string;
  beforeAll(() => {
    root = tmpDir('noderel-addons-');
    const nm = path.join(root, 'app', 'node_modules');
    write(path.join(root, 'app', 'package.json'), '{"name":"app"}');
    write(path.join(nm, 'old-addon', 'package.json'), '{"name":"old-addon"}');
    write(path.join(nm, 'old-addon', 'build', 'Release', 'old.node'), fakeAddon('node_register_module_v108'));
    write(path.join(nm, '@scope', 'napi-addon', 'package.json'), '{"name":"@scope/napi-addon"}');
    write(path.join(nm, '@scope', 'napi-addon', 'prebuilds', 'linux-x64', 'package.json'), '{"type":"commonjs"}');
    write(path.join(nm, '@scope', 'napi-addon', 'prebuilds', 'linux-x64', 'n.node'), fakeAddon('napi_register_module_v1'));
    write(path.join(nm, 'plain', 'package.json'), '{"name":"plain"}');
    write(path.join(nm, 'plain', 'index.js'), '');
    fs.symlinkSync(path.join(root, 'app'), path.join(nm, 'plain', 'loop')); // a cycle must not hang
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('finds every .node file once with its nearest named package', async () => {
    const addons = await findNativeAddons([path.join(root, 'app'), path.join(root, 'missing')]);
    expect(addons.map((a) => ({ ...a, file: path.relative(root, a.file) }))).toEqual([
      { file: 'app/node_modules/@scope/napi-addon/prebuilds/linux-x64/n.node', packageName: '@scope/napi-addon', abi: 'napi' },
      { file: 'app/node_modules/old-addon/build/Release/old.node', packageName: 'old-addon', abi: 108 },
    ]);
  });

  it('returns nothing for directories without addons', async () => {
    expect(await findNativeAddons([path.join(root, 'app', 'node_modules', 'plain', 'index.js'), path.join(root, 'nope')])).toEqual([]);
  });
});

describe('checkAddonAbi', () => {
  const addons: NativeAddon[] = [
    { file: '/srv/app/node_modules/old/build/Release/old.node', packageName: 'old', abi: 115 },
    { file: '/srv/app/node_modules/ok/ok.node', packageName: 'ok', abi: 127 },
    { file: '/srv/app/node_modules/napi/n.node', packageName: 'napi', abi: 'napi' },
    { file: '/srv/app/node_modules/what/w.node', packageName: 'what', abi: 'unknown' },
    { file: '/srv/app/node_modules/odd/o.node', packageName: 'odd', abi: 999 },
  ];

  it('names each mismatching addon, its file relative to cwd and both Node majors', () => {
    expect(checkAddonAbi(addons, 127, '/srv/app')).toEqual([
      'native addon "old" (node_modules/old/build/Release/old.node) was built for NODE_MODULE_VERSION 115 (Node 20) '
        + 'but the pinned runtime is 127 (Node 22); rebuild it with the pinned Node (npm rebuild) or pin a matching runtime',
      'native addon "odd" (node_modules/odd/o.node) was built for NODE_MODULE_VERSION 999 '
        + 'but the pinned runtime is 127 (Node 22); rebuild it with the pinned Node (npm rebuild) or pin a matching runtime',
    ]);
  });

  it('accepts matching, N-API and unknown addons', () => {
    expect(checkAddonAbi(addons.slice(1, 4), 127)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// real addons, compiled once (about 5 s)

const ADDONS = {
  legacy: '#include <node.h>\nstatic void Init(v8::Local<v8::Object> exports) {}\nNODE_MODULE(legacy, Init)\n',
  aware: '#include <node.h>\nNODE_MODULE_INIT() {}\n',
  napi: '#include <node_api.h>\nNAPI_MODULE_INIT() { return exports; }\n',
};

/** Build the three addons with npm's node-gyp into `dir`; returns build/Release. */
function buildAddons(dir: string): string {
  const targets = Object.entries(ADDONS).map(([name, src]) => {
    write(path.join(dir, `${name}.cc`), src);
    return { target_name: name, sources: [`${name}.cc`] };
  });
  write(path.join(dir, 'binding.gyp'), JSON.stringify({ targets }));
  write(path.join(dir, 'package.json'), '{"name":"real-addons","version":"1.0.0"}');
  const npmRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
  const nodeGyp = path.join(npmRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const nodedir = execFileSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  const args = [nodeGyp, 'rebuild', '--jobs', '2', ...(nodedir && nodedir !== 'undefined' ? [`--nodedir=${nodedir}`] : [])];
  try {
    execFileSync(process.execPath, args, { cwd: dir, stdio: 'pipe' });
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`node-gyp failed:\n${e.stdout?.toString()}\n${e.stderr?.toString()}`);
  }
  return path.join(dir, 'build', 'Release');
}

describe('real compiled addons', () => {
  let dir: string;
  let release: string;
  beforeAll(() => {
    dir = tmpDir('noderel-real-addons-');
    release = buildAddons(dir);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('they load in this Node, so the host ABI is the right answer', () => {
    const require = createRequire(import.meta.url);
    for (const name of Object.keys(ADDONS)) expect(() => require(path.join(release, `${name}.node`))).not.toThrow();
  });

  it('detects the ABI of NODE_MODULE, NODE_MODULE_INIT and N-API addons', async () => {
    const found = await findNativeAddons([dir]);
    const byName = Object.fromEntries(found.filter((a) => path.dirname(a.file) === release).map((a) => [path.basename(a.file, '.node'), a]));
    expect(byName.legacy).toMatchObject({ packageName: 'real-addons', abi: HOST_ABI });
    expect(byName.aware).toMatchObject({ packageName: 'real-addons', abi: HOST_ABI });
    expect(byName.napi).toMatchObject({ packageName: 'real-addons', abi: 'napi' });
  });

  it('fails the non-N-API ones against another runtime ABI', async () => {
    const other = HOST_ABI === 127 ? 137 : 127;
    const built = (await findNativeAddons([dir])).filter((a) => path.dirname(a.file) === release);
    const problems = checkAddonAbi(built, other);
    expect(problems).toHaveLength(2);
    for (const p of problems) expect(p).toMatch(new RegExp(`^native addon "real-addons" \\(.*(legacy|aware)\\.node\\) was built for NODE_MODULE_VERSION ${HOST_ABI}`));
  });

  it('a stripped NODE_MODULE addon has no symbol table left: unknown', async () => {
    const stripped = path.join(dir, 'stripped.node');
    fs.copyFileSync(path.join(release, 'legacy.node'), stripped);
    execFileSync('strip', [stripped]);
    expect(addonAbiOf(fs.readFileSync(stripped))).toBe('unknown');
  });
});
