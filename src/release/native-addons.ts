/**
 * Native addons (`*.node` files) in the apps and their dependencies, and their checks against
 * the pinned runtime: an addon built for another NODE_MODULE_VERSION, or for another CPU, fails
 * to load at boot, so the build fails first, naming it.
 *
 * The ABI is read from the file's bytes, without loading it:
 * - `node_register_module_v<N>` (exported by `NODE_MODULE_INIT` / nan addons): ABI N;
 * - `napi_register_module_v1` / `napi_module_register`: N-API, loads on any Node;
 * - `NODE_MODULE(...)` addons export nothing versioned: their static `node::node_module` struct
 *   starts with the ABI, found through the ELF symbol table (`_ZL7_module`); stripped ELF files
 *   and Mach-O/PE files of that kind are `unknown`.
 *
 * The CPU is read from the object file's header: ELF `e_machine` (with its class and byte
 * order), Mach-O `cputype` (every slice of a universal binary), PE `Machine`. Packages that
 * ship prebuilt addons for several platforms (node-gyp-build's `prebuilds/<platform>-<arch>/`,
 * node-pre-gyp's `lib/binding/napi-v6-linux-glibc-x64/`) load only the one for the platform
 * they run on: a file in a directory naming another platform is not checked, provided the
 * package has a file for the target too.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { displayPath } from '../reporter.js';
import { hostTarget } from '../targets.js';
import { nodeMajorForAbi } from './runtime.js';

export interface NativeAddon {
  /** Absolute path of the `.node` file. */
  file: string;
  /** `name` of the nearest package.json above the file (within the scanned directory). */
  packageName: string;
  /** NODE_MODULE_VERSION it was built for, `napi` (any Node), or `unknown`. */
  abi: number | 'napi' | 'unknown';
  /** The CPU (and object format) it was built for; undefined when the header tells nothing. */
  arch?: AddonArch;
}

/** The object format and CPU(s) of a binary, CPUs named as Node's `process.arch`. */
export interface AddonArch {
  format: 'ELF' | 'Mach-O' | 'PE';
  /** One CPU, or each slice of a Mach-O universal binary: `x64`, `arm64`, `arm`, `ia32`, `ppc64le`, ... */
  archs: string[];
}

/** The command that rebuilds addons against the pinned runtime's headers (named by the errors). */
export const REBUILD_COMMAND = 'noderel build --rebuild-addons';

/**
 * One problem line per addon built for another NODE_MODULE_VERSION than `modulesAbi`. N-API
 * addons are always compatible; `unknown` ones are not reported (callers may warn about them).
 * `fix` is the way out the line ends with (default: rebuild with {@link REBUILD_COMMAND}).
 */
export function checkAddonAbi(addons: NativeAddon[], modulesAbi: number, cwd: string = process.cwd(), fix?: string): string[] {
  const way = fix ?? `rebuild it against the pinned runtime's headers with \`${REBUILD_COMMAND}\`, or pin a matching runtime`;
  return addons
    .filter((a): a is NativeAddon & { abi: number } => typeof a.abi === 'number' && a.abi !== modulesAbi)
    .map((a) => `native addon "${a.packageName}" (${displayPath(a.file, cwd)}) was built for NODE_MODULE_VERSION ${a.abi}${majorNote(a.abi)} `
      + `but the pinned runtime is ${modulesAbi}${majorNote(modulesAbi)}; ${way}`);
}

/**
 * One problem line per addon whose object format or CPU is not the target's (`linux-arm64`).
 * Addons whose header tells nothing, and targets noderel does not know, are not reported.
 * `fix` as for {@link checkAddonAbi}; the default depends on whether the target is `host`'s.
 */
export function checkAddonArch(addons: NativeAddon[], target: string, cwd: string = process.cwd(), opts: { host?: string; fix?: string } = {}): string[] {
  const want = targetArch(target);
  if (!want) return [];
  const way = opts.fix ?? ((opts.host ?? hostTarget()) === target
    ? `rebuild it with \`${REBUILD_COMMAND}\`, or install the package's ${target} build`
    : `build the release on a ${target} host (\`${REBUILD_COMMAND}\` there), or use a package that ships ${target} prebuilds`);
  return addons
    .filter((a) => a.arch && !archMatches(a.arch, want))
    .map((a) => `native addon "${a.packageName}" (${displayPath(a.file, cwd)}) is ${describeArch(a.arch!)} but the target ${target} needs ${describeArch({ format: want.format, archs: [want.arch] })}; ${way}`);
}

/** `ELF x86-64`, `Mach-O arm64 + x86-64` */
export function describeArch(a: AddonArch): string {
  return `${a.format} ${a.archs.map((x) => ARCH_LABELS[x] ?? x).join(' + ')}`;
}

/** What a target (`linux-x64`, `darwin-arm64`, `win-x86`, ...) loads; undefined when unknown. */
export function targetArch(target: string): { format: AddonArch['format']; arch: string } | undefined {
  const [os, cpu] = target.split('-', 2) as [string, string | undefined];
  const format = os === 'linux' ? 'ELF' : os === 'darwin' ? 'Mach-O' : os === 'win' || os === 'win32' ? 'PE' : undefined;
  const arch = cpu === undefined ? undefined : TARGET_CPUS[cpu] ?? cpu;
  return format && arch ? { format, arch } : undefined;
}

function archMatches(a: AddonArch, want: { format: string; arch: string }): boolean {
  return a.format === want.format && a.archs.includes(want.arch);
}

/** Target CPU names (npm's node-<os>-<cpu> packages) as process.arch names. */
const TARGET_CPUS: Readonly<Record<string, string>> = { armv7l: 'arm', x86: 'ia32' };

const ARCH_LABELS: Readonly<Record<string, string>> = {
  x64: 'x86-64', ia32: 'x86 (32-bit)', arm64: 'arm64 (aarch64)', arm: 'arm (32-bit)', x32: 'x32',
  ppc64le: 'ppc64le', ppc64: 'ppc64 (big-endian)', s390x: 's390x', riscv64: 'riscv64', loong64: 'loongarch64',
};

// ---------------------------------------------------------------------------------------------
// prebuilds for several platforms

const PLATFORM_DIR_RE = /(?:^|[^a-z0-9])(linux|linuxmusl|alpine|darwin|macos|win32|win|windows|freebsd|openbsd|netbsd|android|sunos|aix)-(?:(?:glibc|musl|gnu|unknown)-)?(x64|x86_64|amd64|arm64|aarch64|armv7l|armv7|armv6l|armv6|arm|ia32|x86|ppc64le|ppc64|s390x|riscv64|loong64|mips64el|mipsel)(?=$|[^a-z0-9])/;

/**
 * The platform a directory name within a package names (`prebuilds/linux-x64`,
 * `napi-v6-linux-glibc-x64`, `darwin-arm64+x64` gives darwin-arm64), as a target name
 * (`linux-x64`); undefined when the path names none.
 */
export function platformOfDir(relDir: string): string | undefined {
  const segments = relDir.split(/[\\/]/).filter(Boolean);
  for (let i = segments.length - 1; i >= 0; i--) {
    const m = PLATFORM_DIR_RE.exec(segments[i]!.toLowerCase());
    if (!m) continue;
    const os = m[1] === 'linuxmusl' || m[1] === 'alpine' ? 'linux' : m[1] === 'macos' ? 'darwin' : m[1]!.startsWith('win') ? 'win' : m[1]!;
    const cpu = ({ x86_64: 'x64', amd64: 'x64', aarch64: 'arm64', armv7l: 'arm', armv7: 'arm', armv6l: 'arm', armv6: 'arm', x86: 'ia32' } as Record<string, string>)[m[2]!] ?? m[2]!;
    return `${os}-${cpu}`;
  }
  return undefined;
}

/** The NODE_MODULE_VERSION a path names (`node.abi115.node`, `node-v115-linux-x64/`), if any. */
export function abiOfPath(rel: string): number | undefined {
  const m = /(?:^|[^a-z0-9])(?:abi|node-v)(\d+)(?=$|[^0-9])/.exec(rel.toLowerCase());
  return m ? Number(m[1]) : undefined;
}

/** An addon with where it sits in its package, for {@link addonsForTarget}. */
export interface PackagedAddon extends NativeAddon {
  /** A key naming the package copy the file belongs to (e.g. its directory). */
  packageDir: string;
  /** The file's path relative to the package directory (forward slashes). */
  relPath: string;
}

/**
 * The addons of each package that a runtime on `target` (of NODE_MODULE_VERSION `modulesAbi`,
 * when given) can load. A package that ships prebuilt binaries for several platforms or Node
 * versions keeps them in directories (or file names) that say which, and its loader picks the
 * one for where it runs: a file whose path names another platform, or another ABI, is left out
 * when the same package has a file for the target (one whose path names no platform, or the
 * target's, and no other ABI). When it has none, every file stays, and the checks report them.
 */
export function addonsForTarget<T extends PackagedAddon>(addons: readonly T[], target: string, modulesAbi?: number): T[] {
  const want = targetArch(target);
  const targetKey = want ? `${target.split('-')[0]}-${want.arch}` : target;
  const forTarget = (a: T) => {
    const p = platformOfDir(path.posix.dirname(a.relPath));
    const abi = abiOfPath(a.relPath);
    return (p === undefined || p === targetKey) && (modulesAbi === undefined || abi === undefined || abi === modulesAbi);
  };
  const hasOwn = new Set(addons.filter(forTarget).map((a) => a.packageDir));
  return addons.filter((a) => forTarget(a) || !hasOwn.has(a.packageDir));
}

function majorNote(abi: number): string {
  const major = nodeMajorForAbi(abi);
  return major === undefined ? '' : ` (Node ${major})`;
}

// ---------------------------------------------------------------------------------------------
// reading the ABI

/** The ABI and CPU of an addon file. */
export async function readAddon(file: string): Promise<Pick<NativeAddon, 'abi' | 'arch'>> {
  const bytes = await fs.readFile(file);
  return { abi: addonAbiOf(bytes), arch: addonArchOf(bytes) };
}

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

// ---------------------------------------------------------------------------------------------
// reading the CPU

/** ELF e_machine values, by CPU name; class and byte order refine some of them. */
type ElfCpu = (is64: boolean, le: boolean) => string;
const ELF_MACHINES: ReadonlyMap<number, ElfCpu> = new Map<number, ElfCpu>([
  [3, () => 'ia32'], // EM_386
  [8, (is64, le) => (is64 ? (le ? 'mips64el' : 'mips64') : le ? 'mipsel' : 'mips')], // EM_MIPS
  [20, () => 'ppc'], // EM_PPC
  [21, (_is64, le) => (le ? 'ppc64le' : 'ppc64')], // EM_PPC64
  [22, (is64) => (is64 ? 's390x' : 's390')], // EM_S390
  [40, (_is64, le) => (le ? 'arm' : 'armbe')], // EM_ARM
  [62, (is64) => (is64 ? 'x64' : 'x32')], // EM_X86_64
  [183, (_is64, le) => (le ? 'arm64' : 'arm64be')], // EM_AARCH64
  [243, (is64) => (is64 ? 'riscv64' : 'riscv32')], // EM_RISCV
  [258, (is64) => (is64 ? 'loong64' : 'loong32')], // EM_LOONGARCH
]);

/** Mach-O cputype values (CPU_ARCH_ABI64 = 0x01000000). */
const MACHO_CPUS: ReadonlyMap<number, string> = new Map([
  [7, 'ia32'], [0x01000007, 'x64'], [12, 'arm'], [0x0100000c, 'arm64'], [0x0200000c, 'arm64_32'], [18, 'ppc'], [0x01000012, 'ppc64'],
]);

/** PE/COFF Machine values. */
const PE_MACHINES: ReadonlyMap<number, string> = new Map([
  [0x14c, 'ia32'], [0x8664, 'x64'], [0xaa64, 'arm64'], [0x1c4, 'arm'], [0xa641, 'arm64'] /* ARM64EC */,
]);

/**
 * The object format and CPU of a `.node` file from its header, without loading it; undefined
 * when it is none of ELF, Mach-O (thin or universal) and PE, or its header names no CPU.
 */
export function addonArchOf(b: Buffer): AddonArch | undefined {
  if (b.length >= 20 && b.readUInt32BE(0) === 0x7f454c46) {
    const cls = b[4];
    const data = b[5];
    if ((cls !== 1 && cls !== 2) || (data !== 1 && data !== 2)) return undefined;
    const le = data === 1;
    const machine = le ? b.readUInt16LE(18) : b.readUInt16BE(18);
    if (machine === 0) return undefined; // EM_NONE
    const name = ELF_MACHINES.get(machine)?.(cls === 2, le) ?? `elf-machine-${machine}`;
    return { format: 'ELF', archs: [name] };
  }
  if (b.length >= 8) {
    const magicLE = b.readUInt32LE(0);
    if (magicLE === 0xfeedface || magicLE === 0xfeedfacf) return machoThin(b.readInt32LE(4) >>> 0);
    const magicBE = b.readUInt32BE(0);
    if (magicBE === 0xfeedface || magicBE === 0xfeedfacf) return machoThin(b.readInt32BE(4) >>> 0);
    if (magicBE === 0xcafebabe || magicBE === 0xcafebabf) {
      const n = b.readUInt32BE(4);
      const size = magicBE === 0xcafebabf ? 32 : 20;
      // A Java class file starts with 0xcafebabe too, followed by its version (>= 45).
      if (n === 0 || n >= 45 || 8 + n * size > b.length) return undefined;
      const archs = Array.from({ length: n }, (_, i) => machoCpuName(b.readUInt32BE(8 + i * size)));
      return { format: 'Mach-O', archs: [...new Set(archs)] };
    }
  }
  if (b.length >= 0x40 && b[0] === 0x4d && b[1] === 0x5a) { // MZ
    const pe = b.readUInt32LE(0x3c);
    if (pe + 6 > b.length || b.readUInt32BE(pe) !== 0x50450000) return undefined; // PE\0\0
    const machine = b.readUInt16LE(pe + 4);
    return { format: 'PE', archs: [PE_MACHINES.get(machine) ?? `pe-machine-0x${machine.toString(16)}`] };
  }
  return undefined;
}

function machoThin(cputype: number): AddonArch {
  return { format: 'Mach-O', archs: [machoCpuName(cputype)] };
}

function machoCpuName(cputype: number): string {
  return MACHO_CPUS.get(cputype) ?? `mach-o-cpu-${cputype}`;
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
