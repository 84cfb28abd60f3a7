/**
 * The release's files as image layers, ordered by how often they change (a change re-sends
 * only its layer and the ones above it... of ours; each layer stands alone, so in practice only
 * the changed one):
 *
 *   1. runtime       `node-<vsn>/`: changes with the runtime pin
 *   2. dependencies  `lib/<app>-<vsn>/node_modules/`: changes with the lock file
 *   3. code          the apps' own files, `bin/`, `lib/noderel-<vsn>/`
 *   4. config        `releases/` and the overlays, plus the run-state and log directories the
 *                    non-root user writes (RELEASE_TMP, RUNNER_LOG_DIR)
 *
 * The release sits at `/opt/<name>`, owned by root and not writable by the user the image runs
 * as. Pure apart from reading the release's files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tarEntries } from '../archive/tar.js';
import type { LayerEntry } from './layer-tar.js';

/** The user (and group) the image runs as: distroless's `nonroot`, no passwd entry needed. */
export const IMAGE_UID = 65532;

export type LayerKind = 'runtime' | 'dependencies' | 'code' | 'config';
export const LAYER_KINDS: readonly LayerKind[] = ['runtime', 'dependencies', 'code', 'config'];

export interface ImagePaths {
  /** `/opt/<name>`: the release root in the image. */
  root: string;
  /** RELEASE_TMP in the image. */
  tmp: string;
  /** RUNNER_LOG_DIR in the image. */
  logs: string;
}

export function imagePaths(name: string): ImagePaths {
  return { root: `/opt/${name}`, tmp: `/var/lib/${name}/tmp`, logs: `/var/log/${name}` };
}

/** Which layer a release path (relative to the release root) belongs to. */
export function layerOf(rel: string): LayerKind {
  if (/^node-[^/]+(\/|$)/.test(rel)) return 'runtime';
  if (/^lib\/[^/]+\/node_modules(\/|$)/.test(rel)) return 'dependencies';
  if (rel === 'bin' || rel === 'lib' || rel.startsWith('bin/') || rel.startsWith('lib/')) return 'code';
  return 'config';
}

const strip = (p: string) => p.replace(/^\/+/, '');

/** Directory entries for every parent of `abs` (an image path), root-owned 0755. */
function parents(abs: string): LayerEntry[] {
  const parts = strip(abs).split('/');
  const out: LayerEntry[] = [];
  for (let i = 1; i < parts.length; i++) out.push({ type: 'dir', path: parts.slice(0, i).join('/'), mode: 0o755, uid: 0, gid: 0 });
  return out;
}

/** One release path as a layer entry under `root` (modes normalized: 0755 or 0644, root-owned). */
function entryOf(releaseDir: string, rel: string, root: string): LayerEntry {
  const abs = path.join(releaseDir, rel);
  const st = fs.lstatSync(abs);
  const p = `${strip(root)}/${rel}`;
  if (st.isDirectory()) return { type: 'dir', path: p, mode: 0o755, uid: 0, gid: 0 };
  if (st.isSymbolicLink()) return { type: 'symlink', path: p, target: fs.readlinkSync(abs), uid: 0, gid: 0 };
  return { type: 'file', path: p, mode: st.mode & 0o111 ? 0o755 : 0o644, uid: 0, gid: 0, data: fs.readFileSync(abs) };
}

/**
 * The entries of each layer, for the release built in `releaseDir` whose build owns `units`
 * (the same paths its tarball packs). Each layer carries the directories above its files, so
 * it unpacks on its own; the config layer also makes the writable directories.
 */
export function releaseLayers(releaseDir: string, units: readonly string[], paths: ImagePaths): Record<LayerKind, LayerEntry[]> {
  const layers: Record<LayerKind, LayerEntry[]> = { runtime: [], dependencies: [], code: [], config: [] };
  for (const rel of tarEntries(releaseDir, units)) {
    const entry = entryOf(releaseDir, rel, paths.root);
    // every directory is root-owned 0755, so the ones above a layer's files are made here
    layers[layerOf(rel)].push(...parents(entry.path), entry);
  }
  for (const dir of [paths.tmp, paths.logs]) {
    layers.config.push(...parents(dir), { type: 'dir', path: strip(dir), mode: 0o750, uid: IMAGE_UID, gid: IMAGE_UID });
  }
  for (const kind of LAYER_KINDS) layers[kind] = dedupeSorted(layers[kind]);
  return layers;
}

/** Sorted by path, one entry per path (the first kept), so the bytes never depend on walk order. */
function dedupeSorted(entries: LayerEntry[]): LayerEntry[] {
  const seen = new Map<string, LayerEntry>();
  for (const e of entries) if (!seen.has(e.path)) seen.set(e.path, e);
  return [...seen.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
