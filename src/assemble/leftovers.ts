/**
 * Build leftovers: what compiling a native addon leaves in its package and nothing loads at run
 * time. The plan leaves them out of every package it ships, apps and dependencies.
 *
 * The rule. Within a package (the directory holding its package.json), a file is left out when
 * 1. it is an object file: named `*.o` or `*.obj`, and its header says relocatable object code
 *    (ELF `ET_REL`, Mach-O `MH_OBJECT`, a COFF object, LLVM bitcode);
 * 2. it is a static library: named `*.a` or `*.lib`, and it is an `ar` archive (`!<arch>`, `!<thin>`);
 * 3. it is one of node-gyp's intermediate files under the package's `build/` directory, when that
 *    directory is node-gyp's (the package has a `binding.gyp`, or `build/config.gypi` exists):
 *    the directories `obj.target/`, `obj.host/`, `obj/` and `.deps/` at any depth under `build/`,
 *    and the files `Makefile`, `*.Makefile`, `*.mk`, `config.gypi`, `gyp-mac-tool`,
 *    `gyp-win-tool`, `*.sln`, `*.vcxproj`, `*.vcxproj.filters` there.
 * Everything else ships: the addon itself (`build/Release/*.node`, where `bindings` and
 * `node-gyp-build` look for it), shared libraries a build copies next to it (`*.so*`,
 * `*.dylib`, `*.dll`), prebuilt binaries, and the package's sources (`binding.gyp`, `src/`,
 * `deps/`), so that the package can still be rebuilt where the release is deployed.
 *
 * Why this rule: a name alone is not enough (a 3D model is an `.obj`, any data file can end in
 * `.a`), so object files and archives are recognised by their bytes; node-gyp's build tree is
 * recognised by the package's own `binding.gyp`, so a JavaScript package's `build/` directory
 * of compiled JS is never touched. A loader only ever opens a shared object, never an object
 * file, a static library or a makefile, so nothing left out can be missed at run time.
 */
import fs from 'node:fs';
import path from 'node:path';

const GYP_DIRS = new Set(['obj.target', 'obj.host', 'obj', '.deps']);
const GYP_FILES = new Set(['Makefile', 'config.gypi', 'gyp-mac-tool', 'gyp-win-tool']);
const GYP_FILE_RE = /\.(?:Makefile|mk|sln|vcxproj|vcxproj\.filters)$/;

/**
 * A predicate over paths relative to `pkgDir` (forward slashes) that is true for the build
 * leftovers of the package there (see the module comment). Reads `binding.gyp`'s presence once
 * and the first bytes of files named like objects or libraries.
 */
export function buildLeftovers(pkgDir: string): (rel: string) => boolean {
  const gyp = fs.existsSync(path.join(pkgDir, 'binding.gyp')) || fs.existsSync(path.join(pkgDir, 'build', 'config.gypi'));
  return (rel) => {
    const parts = rel.split('/');
    const name = parts[parts.length - 1]!;
    if (gyp && parts[0] === 'build' && parts.length > 1) {
      if (parts.slice(1, -1).some((d) => GYP_DIRS.has(d))) return true;
      if (GYP_FILES.has(name) || GYP_FILE_RE.test(name)) return true;
    }
    const ext = path.extname(name).toLowerCase();
    if (ext === '.o' || ext === '.obj') return isObjectFile(head(path.join(pkgDir, rel)));
    if (ext === '.a' || ext === '.lib') return /^!<(?:arch|thin)>\n/.test(head(path.join(pkgDir, rel)).toString('latin1', 0, 8));
    return false;
  };
}

/** Relocatable object code: ELF ET_REL, Mach-O MH_OBJECT, a COFF object, LLVM bitcode. */
export function isObjectFile(b: Buffer): boolean {
  if (b.length >= 18 && b.readUInt32BE(0) === 0x7f454c46) {
    return (b[5] === 2 ? b.readUInt16BE(16) : b.readUInt16LE(16)) === 1; // e_type ET_REL
  }
  if (b.length >= 16) {
    const le = b.readUInt32LE(0);
    if (le === 0xfeedface || le === 0xfeedfacf) return b.readUInt32LE(12) === 1; // MH_OBJECT
    const be = b.readUInt32BE(0);
    if (be === 0xfeedface || be === 0xfeedfacf) return b.readUInt32BE(12) === 1;
  }
  if (b.length >= 4 && b.readUInt32BE(0) === 0x4243c0de) return true; // LLVM bitcode 'BC' 0xC0DE
  if (b.length >= 20) {
    const machine = b.readUInt16LE(0);
    if (machine === 0 && b.readUInt16LE(2) === 0xffff) return true; // ANON_OBJECT_HEADER (/GL, /bigobj)
    if (COFF_MACHINES.has(machine)) {
      const sections = b.readUInt16LE(2);
      const optionalHeader = b.readUInt16LE(16);
      return sections > 0 && sections < 0xffff && optionalHeader === 0; // an object has no optional header
    }
  }
  return false;
}

const COFF_MACHINES = new Set([0x14c, 0x8664, 0xaa64, 0x1c4, 0xa641]);

function head(file: string): Buffer {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(64);
    return b.subarray(0, fs.readSync(fd, b, 0, 64, 0));
  } catch {
    return Buffer.alloc(0);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
