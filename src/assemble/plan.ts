/**
 * Plan, then apply: this module computes, from the release model alone, every file the release
 * directory receives. It reads nothing from the disk (release/sources.ts read the sources into
 * the model) and writes nothing: `apply.ts` is the only writer.
 */
import path from 'node:path';
import { NoderelError } from '../errors.js';
import { PROTECTED_DIRS } from '../paths.js';
import type { Operation, Plan, PlannedPackage, Release, SourceFile, SourceTree } from '../model.js';
import * as layout from '../contract/layout.js';

export type { Operation, Plan } from '../model.js';

function copyFiles(ops: Operation[], files: readonly SourceFile[], to: string): void {
  for (const f of files) ops.push({ kind: 'copy', from: f.from, to: `${to}/${f.rel}`, mode: f.mode });
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
 * taken from `tree` instead (its rebuilt copy, read from `fromDir`); its nested node_modules
 * are other packages and stay as they were.
 */
export function withPackageFrom(plan: Plan, toDir: string, fromDir: string, tree: SourceTree): Plan {
  const prefix = `${toDir.replace(/\/+$/, '')}/`;
  const own = (op: Operation) => op.to.startsWith(prefix) && !op.to.slice(prefix.length).split('/').slice(0, -1).includes('node_modules');
  const at = plan.operations.findIndex(own);
  const fresh: Operation[] = [];
  copyFiles(fresh, tree.files, prefix.slice(0, -1));
  const kept = plan.operations.filter((op) => !own(op));
  const operations = at === -1 ? [...kept, ...fresh] : [...kept.slice(0, at), ...fresh, ...kept.slice(at)];
  checkDistinctTargets(operations);
  const packages = plan.packages?.map((p) => (p.to === prefix.slice(0, -1) ? { ...p, source: fromDir } : p));
  return { ...plan, operations, omitted: [...(plan.omitted ?? []), ...tree.omitted], ...(packages ? { packages } : {}) };
}

/**
 * The launcher script with this release's name and version filled in; it reads the rest from
 * `releases/<vsn>/release.env` (contract/release-env.ts).
 */
export function renderLauncher(r: Release): string {
  const values: Record<string, string> = { REL_NAME: r.name, REL_VSN: r.version, NODEREL_VSN: r.noderelVersion };
  return r.launcherTemplate.replace(/@@([A-Z_]+)@@/g, (m, key: string) => values[key] ?? m);
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

/** The apps' files and their dependencies', with the packages they are (names from the model). */
function planApps(r: Release, ops: Operation[], units: Set<string>): { omitted: string[]; packages: PlannedPackage[] } {
  const omitted: string[] = [];
  const packages: PlannedPackage[] = [];
  for (const app of r.apps) {
    units.add(app.libDir);
    copyFiles(ops, app.files.files, app.libDir);
    omitted.push(...app.files.omitted);
    packages.push({ name: app.name, to: app.libDir, source: app.dir, app: app.name, libDir: app.libDir, dependency: false, optional: false });
    for (const dep of app.deps) {
      const to = `${app.libDir}/${dep.dest.split(path.sep).join('/')}`;
      copyFiles(ops, dep.files.files, to);
      omitted.push(...dep.files.omitted);
      packages.push({ name: dep.name, to, source: dep.source, app: app.name, libDir: app.libDir, dependency: true, optional: dep.optional === true });
    }
  }
  return { omitted, packages };
}

/**
 * Overlays. Outside the protected directories an overlay's destination is a unit of its own,
 * replaced as a whole. Under bin/, lib/, releases/, tmp/ and log/ (which hold other versions,
 * the cookie, run state and logs: PROTECTED_DIRS) nothing the build did not write is ever
 * replaced or removed: a path inside one of this build's units goes with that unit, a file
 * elsewhere is a unit of its own (that file alone), and a mkdir only makes what is missing.
 * Returns the directories to make when missing.
 */
function planOverlays(r: Release, ops: Operation[], units: Set<string>): string[] {
  const dirs = new Set<string>();
  const buildUnits = [...units];
  const protectedPath = (to: string) => (PROTECTED_DIRS as readonly string[]).includes(to.split('/')[0]!);
  const inBuildUnit = (to: string) => buildUnits.some((u) => to === u || to.startsWith(`${u}/`));
  for (const o of r.overlays) {
    if (o.op === 'mkdir') {
      ops.push({ kind: 'mkdir', to: o.to });
      if (!protectedPath(o.to)) units.add(o.to);
      else if (!inBuildUnit(o.to)) dirs.add(o.to);
      continue;
    }
    for (const f of o.files) {
      const to = f.rel === '' ? o.to : `${o.to}/${f.rel}`;
      ops.push(o.op === 'copy' ? { kind: 'copy', from: f.from, to, mode: f.mode } : { kind: 'write', to, data: renderOverlay(r, f.text ?? ''), mode: f.mode });
      if (!protectedPath(o.to)) units.add(o.to);
      else if (!inBuildUnit(to)) units.add(to);
    }
  }
  return [...dirs];
}

/** Computes the whole plan for a release, from the model alone. */
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
  ops.push({ kind: 'copy', from: r.runtime.binaryPath, to: layout.nodeBinary(r.runtime.version), mode: 0o755 });
  if (r.runtime.licensePath) ops.push({ kind: 'copy', from: r.runtime.licensePath, to: `${nodeDir}/LICENSE`, mode: 0o644 });

  const { omitted, packages } = planApps(r, ops, units);

  const runtimeDir = layout.noderelDir(r.noderelVersion);
  units.add(runtimeDir);
  copyFiles(ops, r.runtimeFiles, runtimeDir);
  ops.push({ kind: 'write', to: `${runtimeDir}/package.json`, data: `${JSON.stringify({ name: 'noderel-runtime', version: r.noderelVersion, type: 'commonjs', private: true }, null, 2)}\n`, mode: 0o644 });

  const relDir = layout.releaseVersionDir(r.version);
  units.add(relDir);
  ops.push({ kind: 'write', to: layout.manifestFile(r.version), data: `${JSON.stringify(r.manifest, null, 2)}\n`, mode: 0o644 });
  ops.push({ kind: 'write', to: layout.releaseEnvFile(r.version), data: r.releaseEnv, mode: 0o644 });
  ops.push({ kind: 'write', to: layout.configYamlFile(r.version), data: r.configYaml, mode: 0o644 });
  ops.push({ kind: 'write', to: layout.vmArgsFile(r.version), data: r.vmArgsText, mode: 0o644 });
  ops.push({ kind: 'write', to: layout.sysConfigFile(r.version), data: `${JSON.stringify(r.sysConfig, null, 2)}\n`, mode: 0o644 });
  for (const [hook, file] of Object.entries(r.config.hooks)) {
    ops.push({ kind: 'copy', from: file, to: layout.hookFile(r.version, hook), mode: 0o755 });
  }

  units.add(layout.START_DATA);
  ops.push({ kind: 'write', to: layout.START_DATA, data: `${r.runtime.version} ${r.version}\n`, mode: 0o644 });

  const dirs = planOverlays(r, ops, units);
  checkDistinctTargets(ops);
  return { releaseDir: r.releaseDir, units: [...units], dirs, operations: ops, cookie, omitted, packages };
}

/** One line per operation, for `noderel build --dry-run`. */
export function describePlan(plan: Plan): string[] {
  return plan.operations.map((op) => {
    if (op.kind === 'mkdir') return `mkdir ${op.to}`;
    if (op.kind === 'write') return `write ${op.to} (${Buffer.byteLength(op.data)} bytes, ${op.mode.toString(8)})`;
    return `copy  ${op.to} <- ${op.from}`;
  });
}
