/**
 * Reproducible release tarballs: the same inputs give byte-identical `<name>-<vsn>.tar.gz`.
 * Entries are listed explicitly in sorted order, with one fixed mtime, portable headers (no
 * uid/gid/user names, umask-022 modes) and gzip's header time left at zero.
 */
import fs from 'node:fs';
import path from 'node:path';
import fse from 'fs-extra';
import * as tar from 'tar';
import { NoderelError } from '../errors.js';

/** `SOURCE_DATE_EPOCH` when set (reproducible-builds.org), else 1980-01-01. */
export function archiveMtime(env: NodeJS.ProcessEnv = process.env): Date {
  const epoch = Number(env.SOURCE_DATE_EPOCH);
  return new Date((Number.isFinite(epoch) && epoch > 0 ? epoch : 315532800) * 1000);
}

/** All entries (directories first, then their contents) under the given units, sorted. */
export function tarEntries(root: string, units: readonly string[]): string[] {
  const entries = new Set<string>();
  const addParents = (rel: string) => {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) entries.add(parts.slice(0, i).join('/'));
  };
  const walk = (rel: string) => {
    const abs = path.join(root, rel);
    const st = fs.lstatSync(abs);
    entries.add(rel);
    if (st.isDirectory()) for (const name of fs.readdirSync(abs)) walk(`${rel}/${name}`);
  };
  for (const unit of units) {
    if (!fs.existsSync(path.join(root, unit))) {
      throw new NoderelError('ETAR', `${unit} is missing from ${root}; build the release before making its tarball`);
    }
    addParents(unit);
    walk(unit);
  }
  return [...entries].sort();
}

/** Writes the tarball atomically (temp file + rename). */
export async function makeTar(root: string, units: readonly string[], outFile: string): Promise<void> {
  const entries = tarEntries(root, units);
  const tmp = `${outFile}.tmp-${process.pid}`;
  try {
    await tar.create(
      { gzip: true, file: tmp, cwd: root, portable: true, noDirRecurse: true, mtime: archiveMtime() },
      entries,
    );
    fs.renameSync(tmp, outFile); // atomic: fs-extra's move with overwrite removes the old file first
  } catch (err) {
    await fse.remove(tmp);
    throw err;
  }
}
