/**
 * Plan, then apply (STYLE.md 2): this module computes, without writing anything, every file
 * the release directory receives. `apply.ts` is the only writer.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { configToPlain } from '../config/resolve.js';
import { shippedRuntimeDir, templatesDir } from '../paths.js';
import type { Release } from '../release/model.js';
import * as layout from './layout.js';

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
  readonly operations: readonly Operation[];
  /** Written only when absent, so a rebuild keeps the cookie running nodes use. */
  readonly cookie: string;
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

  for (const app of r.apps) {
    units.add(app.libDir);
    // An app at the project root must not ship the project's rel/ or its releases (_rel, or
    // --output elsewhere).
    copyTree(ops, app.dir, app.libDir, appFileFilter(app.dir), [r.config.outputDir, path.join(r.config.root, '_rel'), path.join(r.config.root, 'rel')]);
    for (const dep of app.deps) copyTree(ops, dep.source, `${app.libDir}/${dep.dest.split(path.sep).join('/')}`);
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

  for (const o of r.config.overlays) {
    units.add(o.to.replace(/\/+$/, ''));
    if (o.op === 'mkdir') ops.push({ kind: 'mkdir', to: o.to });
    else if (fs.statSync(o.from).isDirectory()) {
      if (o.op === 'copy') copyTree(ops, o.from, o.to);
      else for (const rel of listFiles(o.from)) ops.push({ kind: 'write', to: `${o.to}/${rel}`, data: renderOverlay(r, fs.readFileSync(path.join(o.from, rel), 'utf8')), mode: modeOf(path.join(o.from, rel)) });
    } else if (o.op === 'copy') ops.push({ kind: 'copy', from: o.from, to: o.to, mode: modeOf(o.from) });
    else ops.push({ kind: 'write', to: o.to, data: renderOverlay(r, fs.readFileSync(o.from, 'utf8')), mode: modeOf(o.from) });
  }

  return { releaseDir: r.releaseDir, units: [...units], operations: ops, cookie };
}

/** One line per operation, for `noderel build --dry-run`. */
export function describePlan(plan: Plan): string[] {
  return plan.operations.map((op) => {
    if (op.kind === 'mkdir') return `mkdir ${op.to}`;
    if (op.kind === 'write') return `write ${op.to} (${Buffer.byteLength(op.data)} bytes, ${op.mode.toString(8)})`;
    return `copy  ${op.to} <- ${op.from}`;
  });
}
