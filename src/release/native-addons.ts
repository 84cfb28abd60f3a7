/**
 * Native addons (`*.node` files) in the apps and their dependencies, and the ABI check against
 * the pinned runtime: an addon built for another NODE_MODULE_VERSION fails to load at boot, so
 * the build fails first, naming it (SPEC §3).
 *
 * The ABI is read from the file's bytes, without loading it:
 * - `node_register_module_v<N>` (exported by `NODE_MODULE_INIT` / nan addons): ABI N;
 * - `napi_register_module_v1` / `napi_module_register`: N-API, loads on any Node;
 * - `NODE_MODULE(...)` addons export nothing versioned: their static `node::node_module` struct
 *   starts with the ABI, found through the ELF symbol table (`_ZL7_module`); stripped ELF files
 *   and Mach-O/PE files of that kind are `unknown`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { displayPath } from '../reporter.js';
import { nodeMajorForAbi } from './runtime.js';

export interface NativeAddon {
  /** Absolute path of the `.node` file. */
  file: string;
  /** `name` of the nearest package.json above the file (within the scanned directory). */
  packageName: string;
  /** NODE_MODULE_VERSION it was built for, `napi` (any Node), or `unknown`. */
  abi: number | 'napi' | 'unknown';
}

/**
 * Every `*.node` file under `dirs` (node_modules included, symlinks followed once, missing
 * directories skipped), sorted by path, with its package and ABI.
 */
export async function findNativeAddons(dirs: string[]): Promise<NativeAddon[]> {
  const found = new Map<string, string>(); // real path of the file -> scanned root
  const visited = new Set<string>();
  for (const dir of dirs) await walk(path.resolve(dir), path.resolve(dir), visited, found);
  const names = new Map<string, string | undefined>();
  const addons: NativeAddon[] = [];
  for (const [file, root] of found) {
    addons.push({ file, packageName: await nearestPackageName(path.dirname(file), root, names), abi: await readAddonAbi(file) });
  }
  return addons.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/**
 * One problem line per addon built for another NODE_MODULE_VERSION than `modulesAbi`. N-API
 * addons are always compatible; `unknown` ones are not reported (callers may warn about them).
 */
export function checkAddonAbi(addons: NativeAddon[], modulesAbi: number, cwd: string = process.cwd()): string[] {
  return addons
    .filter((a): a is NativeAddon & { abi: number } => typeof a.abi === 'number' && a.abi !== modulesAbi)
    .map((a) => `native addon "${a.packageName}" (${displayPath(a.file, cwd)}) was built for NODE_MODULE_VERSION ${a.abi}${majorNote(a.abi)} `
      + `but the pinned runtime is ${modulesAbi}${majorNote(modulesAbi)}; rebuild it with the pinned Node (npm rebuild) or pin a matching runtime`);
}

function majorNote(abi: number): string {
  const major = nodeMajorForAbi(abi);
  return major === undefined ? '' : ` (Node ${major})`;
}

// ---------------------------------------------------------------------------------------------
// finding the files

async function walk(dir: string, root: string, visited: Set<string>, found: Map<string, string>): Promise<void> {
  const real = await fs.realpath(dir).catch(() => undefined);
  if (real === undefined || visited.has(real)) return;
  visited.add(real);
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (e.name === '.git') continue;
    const full = path.join(dir, e.name);
    const kind = e.isSymbolicLink() ? await statKind(full) : e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'other';
    if (kind === 'dir') await walk(full, root, visited, found);
    else if (kind === 'file' && e.name.endsWith('.node')) {
      const file = await fs.realpath(full);
      if (!found.has(file)) found.set(file, root);
    }
  }
}

async function statKind(p: string): Promise<'dir' | 'file' | 'other'> {
  const st = await fs.stat(p).catch(() => undefined);
  return st?.isDirectory() ? 'dir' : st?.isFile() ? 'file' : 'other';
}

/** The `name` of the nearest package.json from `dir` up to `root`; else the root's basename. */
async function nearestPackageName(dir: string, root: string, memo: Map<string, string | undefined>): Promise<string> {
  for (let d = dir; ; d = path.dirname(d)) {
    if (!memo.has(d)) memo.set(d, await packageNameIn(d));
    const name = memo.get(d);
    if (name) return name;
    if (d === root || !d.startsWith(root) || path.dirname(d) === d) return path.basename(root);
  }
}

async function packageNameIn(dir: string): Promise<string | undefined> {
  try {
    const pkg = JSON.parse(await fs.readFile(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
    return typeof pkg.name === 'string' && pkg.name ? pkg.name : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// reading the ABI

/** The ABI an addon file was built for (see the module comment). */
export async function readAddonAbi(file: string): Promise<NativeAddon['abi']> {
  return addonAbiOf(await fs.readFile(file));
}

/** {@link readAddonAbi} on the bytes of a `.node` file. */
export function addonAbiOf(bytes: Buffer): NativeAddon['abi'] {
  const versioned = versionedSymbol(bytes);
  if (versioned !== undefined) return versioned;
  if (bytes.includes('napi_register_module_v') || bytes.includes('napi_module_register')) return 'napi';
  if (bytes.includes('node_module_register')) return elfModuleStructVersion(bytes) ?? 'unknown';
  return 'unknown';
}

/** N from the first `node_register_module_v<N>` in the bytes. */
function versionedSymbol(bytes: Buffer): number | undefined {
  const needle = 'node_register_module_v';
  for (let at = bytes.indexOf(needle); at !== -1; at = bytes.indexOf(needle, at + 1)) {
    let end = at + needle.length;
    while (end < bytes.length && bytes[end]! >= 0x30 && bytes[end]! <= 0x39) end++;
    if (end > at + needle.length) return Number(bytes.toString('latin1', at + needle.length, end));
  }
  return undefined;
}

const MODULE_STRUCT_SYMBOLS = new Set(['_ZL7_module', '_module']);

/**
 * `nm_version` (the first int) of the static `node::node_module _module` that `NODE_MODULE`
 * defines, located through the ELF `.symtab`; undefined when not ELF, stripped, or not found.
 */
function elfModuleStructVersion(bytes: Buffer): number | undefined {
  try {
    const elf = elfReader(bytes);
    if (!elf) return undefined;
    const sections = elf.sections();
    for (const symtab of sections.filter((s) => s.type === 2 /* SHT_SYMTAB */)) {
      const strtab = sections[symtab.link];
      if (!strtab) continue;
      for (const sym of elf.symbols(symtab)) {
        if ((sym.info & 0xf) !== 1 /* STT_OBJECT */ || !MODULE_STRUCT_SYMBOLS.has(cString(bytes, strtab.offset + sym.name))) continue;
        const sec = sections[sym.shndx];
        if (!sec || sec.type === 8 /* SHT_NOBITS */) continue;
        const version = elf.i32(sec.offset + (sym.value - sec.addr));
        if (version > 0 && version < 10_000) return version;
      }
    }
  } catch {
    // truncated or malformed file: fall through to unknown
  }
  return undefined;
}

interface ElfSection { type: number; addr: number; offset: number; size: number; link: number; entsize: number }
interface ElfSymbol { name: number; info: number; shndx: number; value: number }

/** Just enough of an ELF reader (32/64-bit, either endianness) for section headers and symbols. */
function elfReader(b: Buffer) {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = b[4] === 2;
  const le = b[5] === 1;
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const i32 = (o: number) => (le ? b.readInt32LE(o) : b.readInt32BE(o));
  const addr = (o: number) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(o));
  const w = is64 ? 8 : 4;
  const shoff = addr(is64 ? 0x28 : 0x20);
  const shentsize = u16(is64 ? 0x3a : 0x2e);
  const shnum = u16(is64 ? 0x3c : 0x30);
  const sections = (): ElfSection[] =>
    shoff + shnum * shentsize > b.length ? [] : Array.from({ length: shnum }, (_, i) => {
      const o = shoff + i * shentsize;
      const f = o + 8 + w; // past sh_name, sh_type, sh_flags
      return { type: u32(o + 4), addr: addr(f), offset: addr(f + w), size: addr(f + 2 * w), link: u32(f + 3 * w), entsize: addr(f + 4 * w + 8) };
    });
  const symbols = (s: ElfSection): ElfSymbol[] => {
    const size = s.entsize || (is64 ? 24 : 16);
    if (s.offset + s.size > b.length) return [];
    return Array.from({ length: Math.floor(s.size / size) }, (_, i) => {
      const o = s.offset + i * size;
      return is64
        ? { name: u32(o), info: b[o + 4]!, shndx: u16(o + 6), value: addr(o + 8) }
        : { name: u32(o), value: u32(o + 4), info: b[o + 12]!, shndx: u16(o + 14) };
    });
  };
  return { sections, symbols, i32 };
}

function cString(b: Buffer, at: number): string {
  const end = b.indexOf(0, at);
  return b.toString('latin1', at, end === -1 ? b.length : end);
}
