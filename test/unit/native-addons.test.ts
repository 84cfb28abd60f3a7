// Native addon discovery and the ABI check. Fake `.node` files pin the byte-level rules; real
// addons compiled once with npm's bundled node-gyp (against the headers `npm config get nodedir`
// points at) prove them against what Node's own loader accepts.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addonAbiOf, addonArchOf, addonsForTarget, checkAddonAbi, checkAddonArch, describeArch, platformOfDir, readAddon, targetArch,
  type NativeAddon, type PackagedAddon,
} from '../../src/release/native-addons.js';
import { buildLeftovers, isObjectFile } from '../../src/assemble/leftovers.js';

const HOST_ABI = Number(process.versions.modules);

/** The `.node` files in `dir` (or anywhere under it), read as addons of the package `packageName`. */
async function addonsIn(dir: string, packageName: string, recursive = false): Promise<NativeAddon[]> {
  const files = fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive }) as string[]).filter((f) => f.endsWith('.node')).sort() : [];
  return Promise.all(files.map(async (f) => ({ file: path.join(dir, f), packageName, ...(await readAddon(path.join(dir, f))) })));
}

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
        + "but the pinned runtime is 127 (Node 22); rebuild it against the pinned runtime's headers with `noderel build --rebuild-addons`, or pin a matching runtime",
      'native addon "odd" (node_modules/odd/o.node) was built for NODE_MODULE_VERSION 999 '
        + "but the pinned runtime is 127 (Node 22); rebuild it against the pinned runtime's headers with `noderel build --rebuild-addons`, or pin a matching runtime",
    ]);
  });

  it('accepts matching, N-API and unknown addons', () => {
    expect(checkAddonAbi(addons.slice(1, 4), 127)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// the CPU: ELF, Mach-O and PE headers

/** A minimal ELF header (64 bytes): class 1/2, data 1 (LE) / 2 (BE), e_type, e_machine. */
function elfHeader(opts: { bits: 32 | 64; le: boolean; machine: number; type?: number }): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = opts.bits === 64 ? 2 : 1;
  b[5] = opts.le ? 1 : 2;
  b[6] = 1; // EV_CURRENT
  const u16 = (v: number, at: number) => (opts.le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
  u16(opts.type ?? 3, 16); // ET_DYN: a shared object, as every .node file
  u16(opts.machine, 18);
  return b;
}

function machoHeader(cputype: number, filetype = 6 /* MH_DYLIB */): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(cputype & 0x01000000 ? 0xfeedfacf : 0xfeedface, 0);
  b.writeUInt32LE(cputype, 4);
  b.writeUInt32LE(filetype, 12);
  return b;
}

function fatHeader(cputypes: number[]): Buffer {
  const b = Buffer.alloc(8 + cputypes.length * 20);
  b.writeUInt32BE(0xcafebabe, 0);
  b.writeUInt32BE(cputypes.length, 4);
  cputypes.forEach((c, i) => b.writeUInt32BE(c, 8 + i * 20));
  return b;
}

function peHeader(machine: number): Buffer {
  const b = Buffer.alloc(0x100);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x80, 0x3c);
  b.writeUInt32BE(0x50450000, 0x80);
  b.writeUInt16LE(machine, 0x84);
  return b;
}

describe('addonArchOf', () => {
  it('reads the CPU from the ELF header, with its class and byte order', () => {
    expect(addonArchOf(elfHeader({ bits: 64, le: true, machine: 62 }))).toEqual({ format: 'ELF', archs: ['x64'] });
    expect(addonArchOf(elfHeader({ bits: 64, le: true, machine: 183 }))).toEqual({ format: 'ELF', archs: ['arm64'] });
    expect(addonArchOf(elfHeader({ bits: 32, le: true, machine: 40 }))).toEqual({ format: 'ELF', archs: ['arm'] });
    expect(addonArchOf(elfHeader({ bits: 64, le: true, machine: 21 }))).toEqual({ format: 'ELF', archs: ['ppc64le'] });
    expect(addonArchOf(elfHeader({ bits: 64, le: false, machine: 21 }))).toEqual({ format: 'ELF', archs: ['ppc64'] });
    expect(addonArchOf(elfHeader({ bits: 64, le: false, machine: 22 }))).toEqual({ format: 'ELF', archs: ['s390x'] });
    expect(addonArchOf(elfHeader({ bits: 32, le: true, machine: 3 }))).toEqual({ format: 'ELF', archs: ['ia32'] });
    expect(addonArchOf(elfHeader({ bits: 32, le: true, machine: 62 }))).toEqual({ format: 'ELF', archs: ['x32'] });
    expect(addonArchOf(elfHeader({ bits: 64, le: true, machine: 243 }))).toEqual({ format: 'ELF', archs: ['riscv64'] });
    expect(addonArchOf(elfHeader({ bits: 64, le: true, machine: 9999 }))).toEqual({ format: 'ELF', archs: ['elf-machine-9999'] });
  });

  it('reads Mach-O (thin and universal) and PE headers', () => {
    expect(addonArchOf(machoHeader(0x01000007))).toEqual({ format: 'Mach-O', archs: ['x64'] });
    expect(addonArchOf(machoHeader(0x0100000c))).toEqual({ format: 'Mach-O', archs: ['arm64'] });
    expect(addonArchOf(fatHeader([0x01000007, 0x0100000c]))).toEqual({ format: 'Mach-O', archs: ['x64', 'arm64'] });
    expect(addonArchOf(peHeader(0x8664))).toEqual({ format: 'PE', archs: ['x64'] });
    expect(addonArchOf(peHeader(0xaa64))).toEqual({ format: 'PE', archs: ['arm64'] });
    expect(addonArchOf(peHeader(0x14c))).toEqual({ format: 'PE', archs: ['ia32'] });
  });

  it('tells nothing for other files, EM_NONE and Java class files (0xcafebabe too)', () => {
    expect(addonArchOf(Buffer.from('not an object file at all, just text'))).toBeUndefined();
    expect(addonArchOf(fakeAddon('node_register_module_v115'))).toBeUndefined(); // e_machine 0
    expect(addonArchOf(Buffer.from([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0x34, 0, 0]))).toBeUndefined();
    expect(addonArchOf(Buffer.alloc(0))).toBeUndefined();
  });

  it('a real executable: the pinned runtime of this host is the host CPU', () => {
    expect(addonArchOf(fs.readFileSync(process.execPath))).toEqual({ format: 'ELF', archs: [process.arch] });
  });
});

describe('targetArch and checkAddonArch', () => {
  it('maps every runtime target to the format and CPU it loads', () => {
    expect(targetArch('linux-x64')).toEqual({ format: 'ELF', arch: 'x64' });
    expect(targetArch('linux-arm64')).toEqual({ format: 'ELF', arch: 'arm64' });
    expect(targetArch('linux-armv7l')).toEqual({ format: 'ELF', arch: 'arm' });
    expect(targetArch('linux-ppc64le')).toEqual({ format: 'ELF', arch: 'ppc64le' });
    expect(targetArch('linux-s390x')).toEqual({ format: 'ELF', arch: 's390x' });
    expect(targetArch('darwin-arm64')).toEqual({ format: 'Mach-O', arch: 'arm64' });
    expect(targetArch('win-x86')).toEqual({ format: 'PE', arch: 'ia32' });
    expect(targetArch('plan9-x64')).toBeUndefined();
  });

  const x64: NativeAddon = { file: '/srv/app/node_modules/sq/build/Release/sq.node', packageName: 'sq', abi: 127, arch: { format: 'ELF', archs: ['x64'] } };
  const arm64: NativeAddon = { ...x64, file: '/srv/app/node_modules/a/a.node', packageName: 'a', arch: { format: 'ELF', archs: ['arm64'] } };
  const universal: NativeAddon = { ...x64, file: '/srv/app/node_modules/m/m.node', packageName: 'm', arch: { format: 'Mach-O', archs: ['x64', 'arm64'] } };
  const unknown: NativeAddon = { ...x64, file: '/srv/app/node_modules/u/u.node', packageName: 'u', arch: undefined };

  it('names the addon, its file, its CPU, the target and the fix', () => {
    expect(checkAddonArch([x64, arm64, unknown], 'linux-arm64', '/srv/app', { host: 'linux-x64' })).toEqual([
      'native addon "sq" (node_modules/sq/build/Release/sq.node) is ELF x86-64 but the target linux-arm64 needs ELF arm64 (aarch64); '
        + 'build the release on a linux-arm64 host (`noderel build --rebuild-addons` there), or use a package that ships linux-arm64 prebuilds',
    ]);
    expect(checkAddonArch([arm64], 'linux-x64', '/srv/app', { host: 'linux-x64' })).toEqual([
      'native addon "a" (node_modules/a/a.node) is ELF arm64 (aarch64) but the target linux-x64 needs ELF x86-64; '
        + "rebuild it with `noderel build --rebuild-addons`, or install the package's linux-x64 build",
    ]);
  });

  it('accepts the target CPU, a universal binary holding it, and addons whose header tells nothing', () => {
    expect(checkAddonArch([x64, unknown], 'linux-x64')).toEqual([]);
    expect(checkAddonArch([universal], 'darwin-arm64')).toEqual([]);
    expect(checkAddonArch([universal], 'linux-arm64')[0]).toMatch(/is Mach-O x86-64 \+ arm64 \(aarch64\) but the target linux-arm64 needs ELF arm64/);
    expect(describeArch({ format: 'ELF', archs: ['s390x'] })).toBe('ELF s390x');
  });
});

describe('prebuilds for several platforms', () => {
  it('reads the platform a directory names', () => {
    expect(platformOfDir('prebuilds/linux-x64')).toBe('linux-x64');
    expect(platformOfDir('prebuilds/darwin-x64+arm64')).toBe('darwin-x64');
    expect(platformOfDir('prebuilds/win32-ia32')).toBe('win-ia32');
    expect(platformOfDir('lib/binding/napi-v6-linux-glibc-arm64')).toBe('linux-arm64');
    expect(platformOfDir('vendor/linuxmusl-x64')).toBe('linux-x64');
    expect(platformOfDir('prebuilds/linux-arm')).toBe('linux-arm');
    expect(platformOfDir('build/Release')).toBeUndefined();
    expect(platformOfDir('lib/linuxish')).toBeUndefined();
  });

  const file = (packageDir: string, relPath: string, archs: string[], format: 'ELF' | 'Mach-O' | 'PE' = 'ELF', abi: PackagedAddon['abi'] = 'napi'): PackagedAddon => ({
    file: `/p/${packageDir}/${relPath}`, packageName: packageDir, packageDir, relPath, abi, arch: { format, archs },
  });
  const multi = [
    file('bufferutil', 'prebuilds/darwin-x64+arm64/bufferutil.node', ['x64', 'arm64'], 'Mach-O'),
    file('bufferutil', 'prebuilds/linux-x64/bufferutil.node', ['x64']),
    file('bufferutil', 'prebuilds/linux-arm64/bufferutil.node', ['arm64']),
    file('bufferutil', 'prebuilds/win32-x64/bufferutil.node', ['x64'], 'PE'),
  ];

  it('keeps only the target\'s files of a package that has one for it', () => {
    expect(addonsForTarget(multi, 'linux-arm64').map((a) => a.relPath)).toEqual(['prebuilds/linux-arm64/bufferutil.node']);
    expect(addonsForTarget(multi, 'linux-x64').map((a) => a.relPath)).toEqual(['prebuilds/linux-x64/bufferutil.node']);
  });

  it('keeps every file of a package with nothing for the target, so the check names them', () => {
    const hostOnly = [file('sqlite3', 'lib/binding/napi-v6-linux-glibc-x64/node_sqlite3.node', ['x64'])];
    expect(addonsForTarget(hostOnly, 'linux-arm64')).toEqual(hostOnly);
    expect(checkAddonArch(addonsForTarget(hostOnly, 'linux-arm64'), 'linux-arm64')).toHaveLength(1);
  });

  it('a platform package (the platform in its name, not in a directory) is always checked', () => {
    const sharp = [file('@img/sharp-linux-x64', 'lib/sharp-linux-x64.node', ['x64'])];
    expect(addonsForTarget(sharp, 'linux-arm64')).toEqual(sharp);
  });

  it('leaves out prebuilds tagged for another ABI when one for the runtime is there', () => {
    const tagged = [file('pty', 'prebuilds/linux-x64/pty.abi115.node', ['x64'], 'ELF', 115), file('pty', 'prebuilds/linux-x64/pty.abi127.node', ['x64'], 'ELF', 127)];
    expect(addonsForTarget(tagged, 'linux-x64', 127).map((a) => a.abi)).toEqual([127]);
    expect(addonsForTarget(tagged, 'linux-x64', 137)).toHaveLength(2);
  });
});

// ---------------------------------------------------------------------------------------------
// build leftovers

describe('buildLeftovers', () => {
  let pkg: string;
  let jsPkg: string;
  beforeAll(() => {
    const root = tmpDir('noderel-leftovers-');
    pkg = path.join(root, 'addon');
    jsPkg = path.join(root, 'js');
    const elfObject = elfHeader({ bits: 64, le: true, machine: 62, type: 1 }); // ET_REL
    for (const [rel, content] of Object.entries({
      'binding.gyp': '{}',
      'package.json': '{"name":"addon"}',
      'src/addon.cc': '',
      'deps/sqlite3/sqlite3.c': '',
      'build/Makefile': '',
      'build/binding.Makefile': '',
      'build/addon.target.mk': '',
      'build/config.gypi': '{}',
      'build/deps/sqlite3.Makefile': '',
      'build/deps/sqlite3.target.mk': '',
      'build/Release/addon.node': elfHeader({ bits: 64, le: true, machine: 62 }),
      'build/Release/libextra.so.1': elfHeader({ bits: 64, le: true, machine: 62 }),
      'build/Release/sqlite3.a': '!<arch>\n',
      'build/Release/obj.target/addon.node': elfHeader({ bits: 64, le: true, machine: 62 }),
      'build/Release/obj.target/addon/src/addon.o': elfObject,
      'build/Release/obj/gen/sqlite3/sqlite3.c': '',
      'build/Release/.deps/Release/addon.node.d': '',
      'lib/vendored.o': elfObject,
      'models/teapot.obj': '# Wavefront OBJ\nv 0 0 0\n',
      'data/notes.a': 'plain text, not an archive',
    })) write(path.join(pkg, rel), content);
    for (const rel of ['package.json', 'build/index.js', 'build/Makefile', 'build/obj/x.js']) write(path.join(jsPkg, rel), '');
  });

  it('leaves out object files, static libraries and node-gyp\'s intermediate tree, and ships the addon', () => {
    const leftover = buildLeftovers(pkg);
    const files = listTreeOf(pkg);
    expect(files.filter((f) => !leftover(f))).toEqual([
      'binding.gyp', 'build/Release/addon.node', 'build/Release/libextra.so.1', 'data/notes.a', 'deps/sqlite3/sqlite3.c',
      'models/teapot.obj', 'package.json', 'src/addon.cc',
    ]);
  });

  it('never touches the build/ directory of a package without binding.gyp', () => {
    const leftover = buildLeftovers(jsPkg);
    expect(listTreeOf(jsPkg).filter(leftover)).toEqual([]);
  });

  it('recognises object files by their bytes', () => {
    expect(isObjectFile(elfHeader({ bits: 64, le: true, machine: 62, type: 1 }))).toBe(true);
    expect(isObjectFile(elfHeader({ bits: 64, le: false, machine: 22, type: 1 }))).toBe(true);
    expect(isObjectFile(elfHeader({ bits: 64, le: true, machine: 62, type: 3 }))).toBe(false); // a shared object
    expect(isObjectFile(machoHeader(0x0100000c, 1))).toBe(true); // MH_OBJECT
    expect(isObjectFile(machoHeader(0x0100000c, 6))).toBe(false);
    const coff = Buffer.alloc(20);
    coff.writeUInt16LE(0x8664, 0);
    coff.writeUInt16LE(3, 2); // sections; no optional header
    expect(isObjectFile(coff)).toBe(true);
    expect(isObjectFile(Buffer.from('# Wavefront OBJ file\nv 1.0 2.0 3.0\n'))).toBe(false);
  });
});

function listTreeOf(dir: string, rel = ''): string[] {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const r = rel ? `${rel}/${e.name}` : e.name;
    return e.isDirectory() ? listTreeOf(dir, r) : [r];
  }).sort();
}

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
    const found = await addonsIn(release, 'real-addons');
    const byName = Object.fromEntries(found.map((a) => [path.basename(a.file, '.node'), a]));
    expect(byName.legacy).toMatchObject({ packageName: 'real-addons', abi: HOST_ABI });
    expect(byName.aware).toMatchObject({ packageName: 'real-addons', abi: HOST_ABI });
    expect(byName.napi).toMatchObject({ packageName: 'real-addons', abi: 'napi' });
  });

  it('fails the non-N-API ones against another runtime ABI', async () => {
    const other = HOST_ABI === 127 ? 137 : 127;
    const built = await addonsIn(release, 'real-addons');
    const problems = checkAddonAbi(built, other);
    expect(problems).toHaveLength(2);
    for (const p of problems) expect(p).toMatch(new RegExp(`^native addon "real-addons" \\(.*(legacy|aware)\\.node\\) was built for NODE_MODULE_VERSION ${HOST_ABI}`));
  });

  it('reads the host CPU from every real addon, and from an installed package\'s', async () => {
    const found = await addonsIn(release, 'real-addons');
    expect(found.map((a) => a.arch)).toEqual(found.map(() => ({ format: 'ELF', archs: [process.arch] })));
    expect(checkAddonArch(found, `linux-${process.arch}`)).toEqual([]);
    const other = process.arch === 'arm64' ? 'linux-x64' : 'linux-arm64';
    expect(checkAddonArch(found, other)).toHaveLength(found.length);
    // Any addon an installed package of this repository ships (rollup's, on most hosts).
    const installed = await addonsIn(path.join(process.cwd(), 'node_modules', '@rollup'), '@rollup', true);
    for (const a of installed) expect(a.arch?.archs).toContain(process.arch);
  });

  it('node-gyp\'s real leftovers are recognised: its .o files, its makefiles, and not the addon', () => {
    const leftover = buildLeftovers(dir);
    const files = listTreeOf(dir).filter((f) => f.startsWith('build/'));
    const objects = files.filter((f) => f.endsWith('.o'));
    expect(objects.length).toBeGreaterThan(0);
    for (const f of objects) expect(isObjectFile(fs.readFileSync(path.join(dir, f)))).toBe(true);
    expect(files.filter((f) => !leftover(f)).sort()).toEqual(['build/Release/aware.node', 'build/Release/legacy.node', 'build/Release/napi.node']);
  });

  it('a stripped NODE_MODULE addon has no symbol table left: unknown', async () => {
    const stripped = path.join(dir, 'stripped.node');
    fs.copyFileSync(path.join(release, 'legacy.node'), stripped);
    execFileSync('strip', [stripped]);
    expect(addonAbiOf(fs.readFileSync(stripped))).toBe('unknown');
  });
});
