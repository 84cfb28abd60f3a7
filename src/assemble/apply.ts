/**
 * The only module that writes into the output directory. A plan is applied into a staging
 * directory beside the release; only when every file is written are its units moved into the
 * release root, each replacing the old one as a whole. A failure removes the staging
 * directory and leaves the release as it was. Nothing outside the output directory is
 * ever deleted.
 *
 * After the swap, what no installed version uses any more is removed (one runtime,
 * nothing stale): a version is installed when `releases/<vsn>/release.json` exists, and it
 * uses `node-<node_version>/`, its apps' `dir`s, `lib/noderel-<noderel_version>/` and
 * `bin/<name>-<vsn>`. Only `node-X.Y.Z/` directories, directories of `lib/` and
 * `bin/<name>-*` launchers are ever candidates; run state (`tmp/`), logs (`log/`), `releases/`
 * and anything else are left alone, and nothing is removed while a manifest cannot be read.
 *
 * Overlays under bin/, lib/, releases/, tmp/ and log/ (plan.ts) replace only files the build
 * writes and make only missing directories (`plan.dirs`): a unit there never replaces a
 * directory with a file or a file with a directory, checked before anything is swapped.
 */
import fs from 'node:fs';
import path from 'node:path';
import fse from 'fs-extra';
import { NoderelError } from '../errors.js';
import { isInside, PROTECTED_DIRS } from '../paths.js';
import { COOKIE, nodeDir, noderelDir, versionedLauncher } from '../contract/layout.js';
import { ManifestError, manifestPath, readManifest, type Manifest } from '../contract/manifest.js';
import type { Plan } from './plan.js';

function inRelease(root: string, rel: string): string {
  const abs = path.resolve(root, rel);
  if (abs === root || !isInside(root, abs)) {
    throw new NoderelError('EPLAN', `refusing to write ${rel}: outside the release directory ${root}`);
  }
  return abs;
}

/**
 * Writes every operation under `staging`. A copy is `copyFileSync` with `COPYFILE_FICLONE`, not
 * fs-extra's copy: it clones where the file system can (a runtime binary is ~100 MB) and copies
 * the file a symlink points at, as the release must hold the file itself.
 */
function writeStaging(staging: string, plan: Plan): void {
  for (const op of plan.operations) {
    const to = inRelease(staging, op.to);
    if (op.kind === 'mkdir') {
      fse.ensureDirSync(to);
      continue;
    }
    if (op.kind === 'write') fse.outputFileSync(to, op.data, { mode: op.mode });
    else {
      fse.ensureDirSync(path.dirname(to));
      fs.copyFileSync(op.from, to, fs.constants.COPYFILE_FICLONE);
    }
    fs.chmodSync(to, op.mode);
  }
}

/** Moves each unit from staging into the release root, replacing what was there. */
function swapIn(staging: string, releaseDir: string, units: readonly string[]): void {
  for (const unit of units) {
    const from = inRelease(staging, unit);
    const to = inRelease(releaseDir, unit);
    if (!fs.existsSync(from)) continue;
    // The old unit is renamed aside first (not removed, as fs-extra's move with overwrite
    // would): until the new one is in place, the release still has one.
    const old = `${to}.old-${process.pid}`;
    const had = fs.existsSync(to);
    if (had) fs.renameSync(to, old);
    fse.moveSync(from, to);
    if (had) fse.removeSync(old);
  }
}

/**
 * Refuses, before anything is swapped, a plan that would replace a directory under bin/, lib/,
 * releases/, tmp/ or log/ with a file (or the reverse), or make a directory where a file is:
 * what is there is not the build's to remove.
 */
function checkProtected(staging: string, releaseDir: string, plan: Plan): void {
  const kind = (abs: string): 'directory' | 'file' | undefined => {
    try {
      return fs.statSync(abs).isDirectory() ? 'directory' : 'file';
    } catch {
      return undefined;
    }
  };
  const isProtected = (rel: string) => (PROTECTED_DIRS as readonly string[]).includes(rel.split('/')[0]!);
  for (const unit of plan.units.filter(isProtected)) {
    const staged = kind(inRelease(staging, unit));
    const existing = kind(inRelease(releaseDir, unit));
    if (staged && existing && staged !== existing) {
      throw new NoderelError('EPLAN', `refusing to replace the ${existing} ${unit} in ${releaseDir} with a ${staged}: it is not the build's to remove`, {
        hint: 'move it away, or change the overlay destination in rel/relx.config',
      });
    }
  }
  for (const dir of plan.dirs ?? []) {
    if (kind(inRelease(releaseDir, dir)) === 'file') {
      throw new NoderelError('EPLAN', `refusing to make the directory ${dir} in ${releaseDir}: a file is there, and it is not the build's to remove`, {
        hint: 'move it away, or change the mkdir overlay in rel/relx.config',
      });
    }
  }
}

/** Makes the overlays' directories that are missing; what is in them is left as it is. */
function ensureDirs(releaseDir: string, dirs: readonly string[]): void {
  for (const dir of dirs) fs.mkdirSync(inRelease(releaseDir, dir), { recursive: true });
}

/** Writes `releases/COOKIE` (0400) unless the release already has one. */
function ensureCookie(releaseDir: string, cookie: string): void {
  const file = path.join(releaseDir, COOKIE);
  if (fs.existsSync(file)) return;
  const tmp = `${file}.tmp-${process.pid}`;
  fse.outputFileSync(tmp, cookie, { mode: 0o400 });
  fs.renameSync(tmp, file);
}

/** What applying a plan removed as stale, and what it could not judge. */
export interface ApplyResult {
  /** Paths relative to the release root, sorted. */
  removed: string[];
  /** Why nothing stale was removed, when a manifest could not be read. */
  skipped?: string;
}

const NODE_DIR_RE = /^node-\d+\.\d+\.\d+$/;

/** The paths the installed versions use, or why they cannot be known. */
function pathsInUse(releaseDir: string, name: string): { used: Set<string> } | { problem: string } {
  const used = new Set<string>();
  const releases = path.join(releaseDir, 'releases');
  for (const vsn of fs.existsSync(releases) ? fs.readdirSync(releases) : []) {
    if (!fs.existsSync(manifestPath(releaseDir, vsn))) continue;
    let m: Manifest;
    try {
      m = readManifest(releaseDir, vsn);
    } catch (err) {
      if (!(err instanceof ManifestError)) throw err;
      return { problem: `releases/${vsn}/release.json is not ${err.reason === 'json' ? 'readable JSON' : 'a valid manifest'} (${err.message})` };
    }
    if (m.nodeVersion === '' || m.noderelVersion === '') {
      return { problem: `releases/${vsn}/release.json lacks node_version or noderel_version` };
    }
    used.add(nodeDir(m.nodeVersion));
    used.add(noderelDir(m.noderelVersion));
    used.add(versionedLauncher(name, vsn));
    for (const app of m.apps.values()) used.add(path.relative(releaseDir, app.dir).split(path.sep).join('/'));
  }
  return { used };
}

/**
 * Removes the runtimes, lib/ directories and versioned launchers that neither the plan nor an
 * installed version uses (see the module comment). A launcher is removed only when it is one
 * (a script setting `REL_NAME="<name>"`, as every launcher of this release does).
 */
export function removeStale(plan: Plan, releaseDir: string = plan.releaseDir): ApplyResult {
  const name = path.basename(plan.releaseDir);
  const inUse = pathsInUse(releaseDir, name);
  if ('problem' in inUse) return { removed: [], skipped: inUse.problem };
  const used = new Set([...inUse.used, ...plan.units.map((u) => u.replace(/\/+$/, ''))]);
  const candidates: string[] = [];
  const list = (dir: string) => {
    try {
      return fs.readdirSync(path.join(releaseDir, dir), { withFileTypes: true });
    } catch {
      return [];
    }
  };
  for (const e of list('.')) if (e.isDirectory() && NODE_DIR_RE.test(e.name)) candidates.push(e.name);
  for (const e of list('lib')) if (e.isDirectory() || e.isSymbolicLink()) candidates.push(`lib/${e.name}`);
  for (const e of list('bin')) {
    if (!e.isFile() || !e.name.startsWith(`${name}-`)) continue;
    const text = fs.readFileSync(path.join(releaseDir, 'bin', e.name), 'latin1');
    if (text.startsWith('#!') && text.includes(`\nREL_NAME="${name}"\n`)) candidates.push(`bin/${e.name}`);
  }
  const removed = candidates.filter((c) => !used.has(c)).sort();
  for (const rel of removed) fse.removeSync(inRelease(releaseDir, rel));
  return { removed };
}

/**
 * Applies a plan, then removes what it made stale ({@link removeStale}); on any failure before
 * the swap the staging directory is removed and the error rethrown.
 */
export function applyPlan(plan: Plan, outputDir: string): ApplyResult {
  if (!isInside(outputDir, plan.releaseDir) || plan.releaseDir === outputDir) {
    throw new NoderelError('EPLAN', `release directory ${plan.releaseDir} is not inside the output directory ${outputDir}`);
  }
  fs.mkdirSync(outputDir, { recursive: true });
  const staging = fs.mkdtempSync(path.join(outputDir, `.${path.basename(plan.releaseDir)}.staging-`));
  try {
    writeStaging(staging, plan);
    checkProtected(staging, plan.releaseDir, plan);
    fs.mkdirSync(plan.releaseDir, { recursive: true });
    swapIn(staging, plan.releaseDir, plan.units);
    ensureDirs(plan.releaseDir, plan.dirs ?? []);
    ensureCookie(plan.releaseDir, plan.cookie);
  } finally {
    fse.removeSync(staging);
  }
  return removeStale(plan);
}
