/**
 * The only module that writes into the output directory. A plan is applied into a staging
 * directory beside the release; only when every file is written are its units moved into the
 * release root, each replacing the old one as a whole. A failure removes the staging
 * directory and leaves the release as it was. Nothing outside the output directory is
 * ever deleted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NoderelError } from '../errors.js';
import { isInside } from '../config/resolve.js';
import { COOKIE } from './layout.js';
import type { Plan } from './plan.js';

function inRelease(root: string, rel: string): string {
  const abs = path.resolve(root, rel);
  if (abs === root || !isInside(root, abs)) {
    throw new NoderelError('EPLAN', `refusing to write ${rel}: outside the release directory ${root}`);
  }
  return abs;
}

function writeStaging(staging: string, plan: Plan): void {
  const made = new Set<string>();
  const ensureDir = (dir: string) => {
    if (made.has(dir)) return;
    fs.mkdirSync(dir, { recursive: true });
    made.add(dir);
  };
  for (const op of plan.operations) {
    const to = inRelease(staging, op.to);
    if (op.kind === 'mkdir') {
      ensureDir(to);
      continue;
    }
    ensureDir(path.dirname(to));
    if (op.kind === 'write') fs.writeFileSync(to, op.data, { mode: op.mode });
    else fs.copyFileSync(op.from, to, fs.constants.COPYFILE_FICLONE);
    fs.chmodSync(to, op.mode);
  }
}

/** Moves each unit from staging into the release root, replacing what was there. */
function swapIn(staging: string, releaseDir: string, units: readonly string[]): void {
  for (const unit of units) {
    const from = inRelease(staging, unit);
    const to = inRelease(releaseDir, unit);
    if (!fs.existsSync(from)) continue;
    fs.mkdirSync(path.dirname(to), { recursive: true });
    const old = `${to}.old-${process.pid}`;
    const had = fs.existsSync(to);
    if (had) fs.renameSync(to, old);
    fs.renameSync(from, to);
    if (had) fs.rmSync(old, { recursive: true, force: true });
  }
}

/** Writes `releases/COOKIE` (0400) unless the release already has one. */
function ensureCookie(releaseDir: string, cookie: string): void {
  const file = path.join(releaseDir, COOKIE);
  if (fs.existsSync(file)) return;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, cookie, { mode: 0o400 });
  fs.renameSync(tmp, file);
}

/** Applies a plan; on any failure the staging directory is removed and the error rethrown. */
export function applyPlan(plan: Plan, outputDir: string): void {
  if (!isInside(outputDir, plan.releaseDir) || plan.releaseDir === outputDir) {
    throw new NoderelError('EPLAN', `release directory ${plan.releaseDir} is not inside the output directory ${outputDir}`);
  }
  fs.mkdirSync(outputDir, { recursive: true });
  const staging = fs.mkdtempSync(path.join(outputDir, `.${path.basename(plan.releaseDir)}.staging-`));
  try {
    writeStaging(staging, plan);
    fs.mkdirSync(plan.releaseDir, { recursive: true });
    swapIn(staging, plan.releaseDir, plan.units);
    ensureCookie(plan.releaseDir, plan.cookie);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
