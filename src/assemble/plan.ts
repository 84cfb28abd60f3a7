/**
 * Plan, then apply (STYLE.md 2): this module computes, without writing anything, every file
 * the release directory receives. `apply.ts` is the only writer.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { configToPlain } from '../config/resolve.js';
import { isInside, PROTECTED_DIRS } from '../paths.js';
import { NoderelError } from '../errors.js';
import { shippedRuntimeDir, templatesDir } from '../paths.js';
import type { Release } from '../release/model.js';
import * as layout from './layout.js';
import { buildLeftovers } from './leftovers.js';

export type Operation =
  | { readonly kind: 'copy'; readonly from: string; readonly to: string; readonly mode: number }
  | { readonly kind: 'write'; readonly to: string; readonly data: string; readonly mode: number }
  | { readonly kind: 'mkdir'; readonly to: string };

export interface Plan {
  readonly releaseDir: string;
  /**
   * The paths (relative to the release root) this build owns: each is replaced as a whole
   * when the build is applied. Anything else under the release root (other versions, run
   * state, logs, the cookie) is left alone.
   */
  readonly units: readonly string[];
  /**
   * Directories that overlays make under bin/, lib/, releases/, tmp/ and log/ (or those
   * themselves) outside the units: made when absent, never replaced, never emptied, and not
   * packed into the tarball (what is in them is not the build's).
   */
  readonly dirs?: readonly string[];
  readonly operations: readonly Operation[];
  /** Written only when absent, so a rebuild keeps the cookie running nodes use. */
  readonly cookie: string;
  /** Source files left out as build leftovers (absolute; see leftovers.ts). */
  readonly omitted?: readonly string[];
}

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

function copyTree(ops: Operation[], from: string, to: string, keep?: (rel: string) => boolean, skip?: readonly string[]): void {
  for (const rel of listFiles(from, keep, skip)) {
    const src = path.join(from, rel);
    ops.push({ kind: 'copy', from: src, to: `${to}/${rel}`, mode: modeOf(src) });
  }
}

/**
 * The files of a package (an app or a dependency) at `from`, to be copied to `to`: all of them
 * that `keep` accepts, without nested node_modules, the `skip` directories and the build
 * leftovers (recorded in `omitted`).
 */
function copyPackage(ops: Operation[], omitted: string[], from: string, to: string, keep: (rel: string) => boolean = () => true, skip?: readonly string[]): void {
  const leftover = buildLeftovers(from);
  copyTree(ops, from, to, (rel) => {
    if (!keep(rel)) return false;
    if (!leftover(rel)) return true;
    omitted.push(path.join(from, rel));
    return false;
  }, skip);
}

/**
 * Fails when two operations would write the same path (the second would silently replace the
 * first): each file of the release comes from exactly one source.
 */
export function checkDistinctTargets(ops: readonly Operation[]): void {
  const seen = new Map<string, Operation>();
  for (const op of ops) {
    const key = op.to.replace(/\/+$/, '');
    const first = seen.get(key);
    if (first && !(first.kind === 'mkdir' && op.kind === 'mkdir')) {
      const what = (o: Operation) => (o.kind === 'copy' ? o.from : o.kind === 'write' ? 'generated text' : 'a directory');
      throw new NoderelError('EPLAN', `two sources would be written to ${key} in the release: ${what(first)} and ${what(op)}`, {
        hint: 'each path of the release must come from one place; check apps whose directories overlap and overlay destinations',
      });
    }
    if (!first) seen.set(key, op);
  }
}

/**
 * The plan with the package copied to `toDir` (`lib/web-1.0.0/node_modules/better-sqlite3`)
 * taken from `fromDir` instead (its rebuilt copy); its nested node_modules are other packages
 * and stay as they were.
 */
export function withPackageFrom(plan: Plan, toDir: string, fromDir: string): Plan {
  const prefix = `${toDir.replace(/\/+$/, '')}/`;
  const own = (op: Operation) => op.to.startsWith(prefix) && !op.to.slice(prefix.length).split('/').slice(0, -1).includes('node_modules');
  const at = plan.operations.findIndex(own);
  const fresh: Operation[] = [];
  const omitted: string[] = [];
  copyPackage(fresh, omitted, fromDir, prefix.slice(0, -1));
  const kept = plan.operations.filter((op) => !own(op));
  const operations = at === -1 ? [...kept, ...fresh] : [...kept.slice(0, at), ...fresh, ...kept.slice(at)];
  checkDistinctTargets(operations);
  return { ...plan, operations, omitted: [...(plan.omitted ?? []), ...omitted] };
}

/** The launcher script with this release's constants filled in. */
export function renderLauncher(r: Release): string {
  const template = fs.readFileSync(path.join(templatesDir, 'bin', 'launcher.sh'), 'utf8');
  const values: Record<string, string> = {
    REL_NAME: r.name,
    REL_VSN: r.version,
    NODE_VSN: r.runtime.version,
    NODEREL_VSN: r.noderelVersion,
    NODE_TYPES: r.config.nodeTypes.map((t) => t.name).join(' '),
    PROCESS_NAMES: r.config.nodeTypes.map((t) => `${t.name}=${t.processName}`).join(' '),
    DEFAULT_NODE_TYPE: r.config.defaultNodeType,
  };
  return template.replace(/@@([A-Z_]+)@@/g, (m, key: string) => values[key] ?? m);
}

/** `{{release_name}}`-style substitution for `template` overlays. */
function renderOverlay(r: Release, text: string): string {
  const values: Record<string, string> = {
    release_name: r.name,
    release_version: r.version,
    node_version: r.runtime.version,
    default_node_type: r.config.defaultNodeType,
  };
  return text.replace(/\{\{\s*([a-z_]+)\s*\}\}/g, (m, key: string) => values[key] ?? m);
}

/** Computes the whole plan for a release; pure apart from reading the source files. */
export function planRelease(r: Release, cookie: string): Plan {
  const ops: Operation[] = [];
  const units = new Set<string>();
  const launcher = renderLauncher(r);
  for (const bin of [layout.launcher(r.name), layout.versionedLauncher(r.name, r.version)]) {
    ops.push({ kind: 'write', to: bin, data: launcher, mode: 0o755 });
    units.add(bin);
  }

  const nodeDir = layout.nodeDir(r.runtime.version);
  units.add(nodeDir);
  ops.push({ kind: 'copy', from: r.runtime.binaryPath, to: `${nodeDir}/bin/node`, mode: 0o755 });
  if (r.runtime.licensePath) ops.push({ kind: 'copy', from: r.runtime.licensePath, to: `${nodeDir}/LICENSE`, mode: 0o644 });

  const omitted: string[] = [];
  for (const app of r.apps) {
    units.add(app.libDir);
    // An app at the project root must not ship the project's rel/ or its releases (_rel, or
    // --output elsewhere), nor the directories of the other apps inside it (they ship as
    // themselves, in their own lib/ directories).
    const nested = r.apps.filter((o) => o !== app && o.dir !== app.dir && isInside(app.dir, o.dir)).map((o) => o.dir);
    copyPackage(ops, omitted, app.dir, app.libDir, appFileFilter(app.dir), [r.config.outputDir, path.join(r.config.root, '_rel'), path.join(r.config.root, 'rel'), ...nested]);
    for (const dep of app.deps) copyPackage(ops, omitted, dep.source, `${app.libDir}/${dep.dest.split(path.sep).join('/')}`);
  }

  const runtimeDir = layout.noderelDir(r.noderelVersion);
  units.add(runtimeDir);
  copyTree(ops, shippedRuntimeDir, runtimeDir, (rel) => rel.endsWith('.js'));
  ops.push({ kind: 'write', to: `${runtimeDir}/package.json`, data: `${JSON.stringify({ name: 'noderel-runtime', version: r.noderelVersion, type: 'commonjs', private: true }, null, 2)}\n`, mode: 0o644 });

  const relDir = layout.releaseVersionDir(r.version);
  units.add(relDir);
  ops.push({ kind: 'write', to: `${relDir}/release.json`, data: `${JSON.stringify(r.manifest, null, 2)}\n`, mode: 0o644 });
  ops.push({ kind: 'write', to: `${relDir}/config.yaml`, data: YAML.stringify(configToPlain(r.config)), mode: 0o644 });
  ops.push({ kind: 'write', to: `${relDir}/vm.args`, data: r.vmArgsText, mode: 0o644 });
  ops.push({ kind: 'write', to: `${relDir}/sys.config`, data: `${JSON.stringify(r.sysConfig, null, 2)}\n`, mode: 0o644 });
  for (const [hook, file] of Object.entries(r.config.hooks)) {
    ops.push({ kind: 'copy', from: file, to: `${relDir}/hooks/${hook}`, mode: 0o755 });
  }

  units.add(layout.START_DATA);
  ops.push({ kind: 'write', to: layout.START_DATA, data: `${r.runtime.version} ${r.version}\n`, mode: 0o644 });

  // Overlays. Outside the protected directories an overlay's destination is a unit of its own,
  // replaced as a whole. Under bin/, lib/, releases/, tmp/ and log/ (which hold other versions,
  // the cookie, run state and logs: PROTECTED_DIRS) nothing the build did not write is ever
  // replaced or removed: a path inside one of this build's units goes with that unit, a file
  // elsewhere is a unit of its own (that file alone), and a mkdir only makes what is missing.
  const dirs = new Set<string>();
  const buildUnits = [...units];
  const protectedPath = (to: string) => (PROTECTED_DIRS as readonly string[]).includes(to.split('/')[0]!);
  const inBuildUnit = (to: string) => buildUnits.some((u) => to === u || to.startsWith(`${u}/`));
  const overlayFile = (o: { to: string }, op: Operation) => {
    ops.push(op);
    if (!protectedPath(o.to)) units.add(o.to);
    else if (!inBuildUnit(op.to)) units.add(op.to);
  };
  for (const o of r.config.overlays) {
    if (o.op === 'mkdir') {
      ops.push({ kind: 'mkdir', to: o.to });
      if (!protectedPath(o.to)) units.add(o.to);
      else if (!inBuildUnit(o.to)) dirs.add(o.to);
    } else if (fs.statSync(o.from).isDirectory()) {
      for (const rel of listFiles(o.from)) {
        const from = path.join(o.from, rel);
        const to = `${o.to}/${rel}`;
        overlayFile(o, o.op === 'copy' ? { kind: 'copy', from, to, mode: modeOf(from) } : { kind: 'write', to, data: renderOverlay(r, fs.readFileSync(from, 'utf8')), mode: modeOf(from) });
      }
    } else if (o.op === 'copy') overlayFile(o, { kind: 'copy', from: o.from, to: o.to, mode: modeOf(o.from) });
    else overlayFile(o, { kind: 'write', to: o.to, data: renderOverlay(r, fs.readFileSync(o.from, 'utf8')), mode: modeOf(o.from) });
  }

  checkDistinctTargets(ops);
  return { releaseDir: r.releaseDir, units: [...units], dirs: [...dirs], operations: ops, cookie, omitted };
}

/** One line per operation, for `noderel build --dry-run`. */
export function describePlan(plan: Plan): string[] {
  return plan.operations.map((op) => {
    if (op.kind === 'mkdir') return `mkdir ${op.to}`;
    if (op.kind === 'write') return `write ${op.to} (${Buffer.byteLength(op.data)} bytes, ${op.mode.toString(8)})`;
    return `copy  ${op.to} <- ${op.from}`;
  });
}
