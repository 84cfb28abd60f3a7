/**
 * The model's disk reads for the plan: every source file the release ships, listed (sorted),
 * with its mode, build leftovers left out, and templates' text read. Done once while the model
 * is built, so that assemble/plan.ts computes the plan from the model alone.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Overlay, ResolvedApp, ResolvedConfig } from '../config/resolve.js';
import { buildLeftovers } from '../assemble/leftovers.js';
import { isInside, shippedRuntimeDir, templatesDir } from '../paths.js';
import type { OverlaySource, ReleaseApp, SourceFile, SourceTree } from '../model.js';
import type { DependencyPackage } from './deps.js';

const SKIP_DIRS = new Set(['node_modules', '.git']);

/**
 * Every file under `dir` (relative paths, sorted), skipping nested node_modules, .git and the
 * directories in `skip` (absolute: the output directory when an app is the project itself).
 */
export function listFiles(dir: string, keep: (rel: string) => boolean = () => true, skip: readonly string[] = []): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name) && !skip.includes(path.join(dir, r))) walk(r);
      } else if ((e.isFile() || e.isSymbolicLink()) && keep(r)) {
        out.push(r);
      }
    }
  };
  walk('');
  return out;
}

/** The files npm would publish, roughly: the `files` allow-list when it has no globs, else all. */
function appFileFilter(appDir: string): (rel: string) => boolean {
  let files: unknown;
  try {
    files = (JSON.parse(fs.readFileSync(path.join(appDir, 'package.json'), 'utf8')) as { files?: unknown }).files;
  } catch {
    files = undefined;
  }
  if (!Array.isArray(files) || files.some((f) => typeof f !== 'string' || /[*?[{!]/.test(f))) return () => true;
  const allow = (files as string[]).map((f) => f.replace(/^\.\//, '').replace(/\/$/, ''));
  return (rel) =>
    rel === 'package.json' || /^(README|LICENSE|LICENCE)/i.test(rel) || allow.some((a) => rel === a || rel.startsWith(`${a}/`));
}

function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o111 ? 0o755 : 0o644;
}

/** The files under `dir` that `keep` accepts (see {@link listFiles}), with their modes. */
export function treeFiles(dir: string, keep?: (rel: string) => boolean, skip?: readonly string[]): SourceFile[] {
  return listFiles(dir, keep, skip).map((rel) => {
    const from = path.join(dir, rel);
    return { rel, from, mode: modeOf(from) };
  });
}

/**
 * The files of a package (an app or a dependency) at `dir`: all of them that `keep` accepts,
 * without nested node_modules, the `skip` directories and the build leftovers (in `omitted`).
 */
export function packageFiles(dir: string, keep: (rel: string) => boolean = () => true, skip?: readonly string[]): SourceTree {
  const leftover = buildLeftovers(dir);
  const omitted: string[] = [];
  const files = treeFiles(dir, (rel) => {
    if (!keep(rel)) return false;
    if (!leftover(rel)) return true;
    omitted.push(path.join(dir, rel));
    return false;
  }, skip);
  return { files, omitted };
}

/** An overlay's source files (a directory's, or the one file, `rel` `''`), a template's text read. */
function overlaySource(o: Overlay): OverlaySource {
  if (o.op === 'mkdir') return o;
  const files: SourceFile[] = fs.statSync(o.from).isDirectory() ? treeFiles(o.from) : [{ rel: '', from: o.from, mode: modeOf(o.from) }];
  return { op: o.op, to: o.to, files: o.op === 'copy' ? files : files.map((f) => ({ ...f, text: fs.readFileSync(f.from, 'utf8') })) };
}

export type AppWithDeps = ResolvedApp & { readonly deps: readonly DependencyPackage[]; readonly libDir: string };

/**
 * What the plan needs from the disk: each app's files and its dependencies', the noderel runtime
 * bundles, the overlays' sources and the launcher template.
 */
export function readSources(config: ResolvedConfig, apps: readonly AppWithDeps[]): {
  apps: ReleaseApp[]; runtimeFiles: SourceFile[]; overlays: OverlaySource[]; launcherTemplate: string;
} {
  return {
    apps: apps.map((app) => {
      // An app at the project root must not ship the project's rel/ or its releases (_rel, or
      // --output elsewhere), nor the directories of the other apps inside it (they ship as
      // themselves, in their own lib/ directories).
      const nested = apps.filter((o) => o !== app && o.dir !== app.dir && isInside(app.dir, o.dir)).map((o) => o.dir);
      const skip = [config.outputDir, path.join(config.root, '_rel'), path.join(config.root, 'rel'), ...nested];
      return {
        ...app,
        files: packageFiles(app.dir, appFileFilter(app.dir), skip),
        deps: app.deps.map((d) => ({ ...d, files: packageFiles(d.source) })),
      };
    }),
    runtimeFiles: treeFiles(shippedRuntimeDir, (rel) => rel.endsWith('.js')),
    overlays: config.overlays.map(overlaySource),
    launcherTemplate: fs.readFileSync(path.join(templatesDir, 'bin', 'launcher.sh'), 'utf8'),
  };
}
