/**
 * The native addons a release ships (the `.node` files among the plan's copies, not whatever
 * else sits in node_modules), their checks against the pinned runtime (ABI and CPU),
 * and `--rebuild-addons`: compiling them again against the pinned runtime's own headers.
 *
 * The rebuild never touches the project: the packages to rebuild, with the rest of their app's
 * production node_modules (install scripts require their dependencies: `prebuild-install`,
 * `node-gyp-build`, `node-addon-api`), are copied from the plan into a temporary directory, and
 * `npm rebuild <names>` runs there with `--nodedir` set to the pinned runtime's headers and
 * `build_from_source` on (so `prebuild-install` and `node-pre-gyp` neither download a prebuilt
 * binary for the Node that runs npm nor reach the network). npm and node-gyp run on the Node
 * that runs the build; `--nodedir` (and `target`, for node-pre-gyp's paths) make the result
 * one for the pinned runtime. The plan then copies those packages from the rebuilt copy.
 *
 * Rebuilt: each package that ships an addon for the target built for another Node's
 * NODE_MODULE_VERSION (or for another CPU) and that has a `binding.gyp`, and each package never
 * compiled (below). N-API addons load on any Node, and files whose ABI cannot be read (not
 * addons, or stripped), are left as they are. A package without a
 * `binding.gyp` ships prebuilt binaries only and cannot be rebuilt; the check names it.
 * Rebuilding for another CPU than the host's is refused: there is no cross compiler.
 *
 * Never compiled: a dependency with a `binding.gyp` and no `.node` file anywhere in it was
 * installed without running its build (`npm ci --ignore-scripts`, or an npm that blocks
 * dependency install scripts); it would fail at run time ("Could not locate the bindings file").
 * The check fails the build naming it; `--rebuild-addons` compiles it like the others (on a
 * host of the target only). An optional dependency only gets a warning: the app must do without
 * it anyway (npm leaves out an optional dependency whose build fails).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fse from 'fs-extra';
import { NoderelError } from '../errors.js';
import { withPackageFrom, type Plan } from '../assemble/plan.js';
import { packageFiles } from './sources.js';
import { displayPath, type Reporter } from '../reporter.js';
import type { PlannedPackage, Release } from '../model.js';
import {
  addonsForTarget, checkAddonAbi, checkAddonArch, describeArch, readAddon, REBUILD_COMMAND, type PackagedAddon,
} from './native-addons.js';
import { hostTarget } from '../targets.js';
import { runtimeHeaders, type Runtime } from './runtime.js';

/** A `.node` file the plan ships. */
export interface ShippedAddon extends PackagedAddon {
  /** Its path in the release (`lib/web-1.0.0/node_modules/x/build/Release/x.node`). */
  to: string;
  /** The app's `lib/` directory it ships in. */
  libDir: string;
  /** The package's path in the release (`packageDir` is the same). */
  packageTo: string;
  /** True when the file belongs to a dependency (under node_modules), not to the app itself. */
  inDependency: boolean;
}

/**
 * The package a path of the release belongs to: the deepest of the plan's packages (apps and
 * dependencies, with the names the model gave them) whose directory holds it.
 */
function packageOf(plan: Plan): (to: string) => PlannedPackage | undefined {
  const byTo = new Map((plan.packages ?? []).map((p) => [p.to, p]));
  return (to) => {
    for (let dir = path.posix.dirname(to); dir !== '.' && dir !== '/'; dir = path.posix.dirname(dir)) {
      const p = byTo.get(dir);
      if (p) return p;
    }
    return undefined;
  };
}

/** Every `.node` file the plan copies into an app's `lib/` directory, with the package it belongs to. */
export async function shippedAddons(plan: Plan): Promise<ShippedAddon[]> {
  const out: ShippedAddon[] = [];
  const owner = packageOf(plan);
  for (const op of plan.operations) {
    if (op.kind !== 'copy' || !op.to.endsWith('.node')) continue;
    const pkg = owner(op.to);
    if (!pkg) continue; // an overlay outside the apps: not code any app loads through node_modules
    out.push({
      file: op.from,
      to: op.to,
      libDir: pkg.libDir,
      packageName: pkg.name,
      packageTo: pkg.to,
      packageDir: pkg.to,
      relPath: op.to.slice(pkg.to.length + 1),
      inDependency: pkg.dependency,
      ...(await readAddon(op.from)),
    });
  }
  return out;
}

/** A dependency the plan ships with a `binding.gyp` and no `.node` file: its build never ran. */
export interface UncompiledAddon {
  /** The package's name in its app (`better-sqlite3`). */
  packageName: string;
  /** Its path in the release (`lib/web-1.0.0/node_modules/better-sqlite3`). */
  packageTo: string;
  /** Its directory in the project. */
  source: string;
  /** The app that ships it, and that app's `lib/` directory. */
  app: string;
  libDir: string;
  /** Only reachable through optional dependencies. */
  optional: boolean;
}

/**
 * The dependencies the plan ships that have a `binding.gyp` (at their root) and no `.node` file
 * anywhere in them (nested node_modules are other packages). Not counted: a package whose
 * package.json says `"gypfile": false` and has no install script, since npm never compiles it.
 */
export function uncompiledAddons(plan: Plan): UncompiledAddon[] {
  const owner = packageOf(plan);
  const gyp = new Map<string, PlannedPackage>();
  const compiled = new Set<string>();
  for (const op of plan.operations) {
    if (op.kind !== 'copy') continue;
    const pkg = owner(op.to);
    if (!pkg?.dependency) continue;
    if (op.to === `${pkg.to}/binding.gyp`) gyp.set(pkg.to, pkg);
    if (op.to.endsWith('.node')) compiled.add(pkg.to);
  }
  const out: UncompiledAddon[] = [];
  for (const [packageTo, pkg] of gyp) {
    if (compiled.has(packageTo) || !npmCompiles(pkg.source)) continue;
    out.push({ packageName: pkg.name, packageTo, source: pkg.source, app: pkg.app, libDir: pkg.libDir, optional: pkg.optional });
  }
  return out;
}

/** Whether npm's install runs a build for the package: an install script, or the `node-gyp rebuild` npm adds for a binding.gyp. */
function npmCompiles(pkgDir: string): boolean {
  let pkg: { gypfile?: unknown; scripts?: Record<string, unknown> };
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as typeof pkg;
  } catch {
    return true;
  }
  const scripts = pkg.scripts && typeof pkg.scripts === 'object' ? pkg.scripts : {};
  return pkg.gypfile !== false || ['preinstall', 'install', 'postinstall'].some((k) => typeof scripts[k] === 'string');
}

/** The project directory a package is installed in (above its first node_modules), for `npm rebuild`. */
function projectOf(source: string): string | undefined {
  const at = source.split(path.sep).indexOf('node_modules');
  return at > 0 ? source.split(path.sep).slice(0, at).join(path.sep) || path.sep : undefined;
}

/** The problem line (or, for an optional dependency, the warning) for a package never compiled. */
function uncompiledProblem(u: UncompiledAddon, rt: Runtime, opts: { rebuilt?: ReadonlySet<string> }): string {
  const what = `app ${u.app}: ${u.optional ? 'optional dependency' : 'native addon package'} "${u.packageName}" (${displayPath(u.source)}) has a binding.gyp but no compiled .node file: its build never ran (installed with --ignore-scripts, or by an npm that blocks install scripts?)`;
  const project = projectOf(u.source);
  const where = project && displayPath(project) !== '.' ? ` in ${displayPath(project)}` : '';
  let fix: string;
  if (rt.target !== hostTarget()) fix = `it must be compiled on a ${rt.target} host: build the release there with \`${REBUILD_COMMAND}\``;
  else if (opts.rebuilt?.has(u.packageTo)) fix = `\`${REBUILD_COMMAND}\` compiled it against node ${rt.version}'s headers and it still has no .node file: see what \`npm rebuild ${u.packageName} --foreground-scripts\`${where} does`;
  else if (Number(process.versions.modules) === rt.modulesAbi) fix = `build it with \`${REBUILD_COMMAND}\`, or run \`npm rebuild ${u.packageName}\`${where}`;
  else fix = `build it with \`${REBUILD_COMMAND}\` (\`npm rebuild ${u.packageName}\`${where} would build it for node ${process.versions.node}, not the pinned ${rt.version})`;
  return u.optional ? `${what}; it ships, and fails to load at run time: the app must do without it, or ${fix}` : `${what}; ${fix}`;
}

/** Where a package of the plan comes from: the directory of its copied package.json. */
function packageSource(plan: Plan, packageTo: string): string | undefined {
  const op = plan.operations.find((o) => o.kind === 'copy' && o.to === `${packageTo}/package.json`);
  return op?.kind === 'copy' ? path.dirname(op.from) : undefined;
}

/** Built for another Node's ABI, or (a copied-in build) for another CPU than the target's. */
function needsRebuild(a: ShippedAddon, rt: Runtime): boolean {
  return (typeof a.abi === 'number' && a.abi !== rt.modulesAbi) || checkAddonArch([a], rt.target, process.cwd(), { fix: '' }).length > 0;
}

/**
 * Fails the build when a shipped addon the runtime would load is for another CPU or ABI: one
 * line per file, naming its package, file, what it was built for, the target and the fix.
 * `rebuilt`: the packages `--rebuild-addons` compiled (the fix then says why a file is still wrong).
 */
export async function checkShippedAddons(plan: Plan, release: Pick<Release, 'runtime'>, opts: { rebuilt?: ReadonlySet<string>; rebuildRequested?: boolean; skip?: ReadonlySet<string>; reporter?: Reporter } = {}): Promise<void> {
  const rt = release.runtime;
  const addons = addonsForTarget(await shippedAddons(plan), rt.target, rt.modulesAbi).filter((a) => !opts.skip?.has(a.packageTo));
  const problems: string[] = [];
  for (const u of uncompiledAddons(plan)) {
    if (opts.skip?.has(u.packageTo)) continue;
    if (u.optional) opts.reporter?.warn(uncompiledProblem(u, rt, opts));
    else problems.push(uncompiledProblem(u, rt, opts));
  }
  for (const a of addons) {
    const arch = checkAddonArch([a], rt.target);
    if (arch.length > 0) {
      problems.push(...arch);
      continue;
    }
    let fix: string | undefined;
    if (rt.target !== hostTarget()) fix = `rebuild it on a ${rt.target} host with \`${REBUILD_COMMAND}\`, or pin a matching runtime`;
    else if (opts.rebuilt?.has(a.packageTo)) fix = `the rebuild against node ${rt.version}'s headers did not replace this file; remove it from the package or pin a matching runtime`;
    else if (opts.rebuildRequested && !a.inDependency) fix = `it is app ${a.packageName}'s own addon, and --rebuild-addons rebuilds dependencies only: build it for Node ${rt.version} in the app, or pin a matching runtime`;
    else if (opts.rebuildRequested) fix = `it was not rebuilt: "${a.packageName}" has no binding.gyp (it ships prebuilt binaries only); install a build of it for Node ${rt.version}, or pin a matching runtime`;
    problems.push(...checkAddonAbi([a], rt.modulesAbi, process.cwd(), fix));
  }
  if (problems.length > 0) throw new NoderelError('EADDON', problems[0]!, { problems: problems.slice(1) });
}

export interface RebuildOptions {
  reporter: Reporter;
  cacheDir?: string;
  /** The npm executable; default `npm` from PATH. */
  npm?: string;
  /** Where npm runs for the runtime headers (a project .npmrc applies). */
  cwd?: string;
  /** Only say what would be rebuilt. */
  dryRun?: boolean;
}

export interface RebuildResult {
  plan: Plan;
  /** `packageTo` of each rebuilt package. */
  rebuilt: Set<string>;
  /** Removes the temporary rebuild directory; call once the plan is applied. */
  cleanup: () => void;
}

/**
 * `--rebuild-addons` (see the module comment): returns the plan with the rebuilt packages
 * copied from a temporary directory. Throws for a cross-target rebuild and a failed one.
 */
export async function rebuildAddons(plan: Plan, release: Pick<Release, 'runtime'>, opts: RebuildOptions): Promise<RebuildResult> {
  const rt = release.runtime;
  const none: RebuildResult = { plan, rebuilt: new Set(), cleanup: () => {} };
  const addons = addonsForTarget(await shippedAddons(plan), rt.target, rt.modulesAbi);
  const uncompiled = uncompiledAddons(plan);
  const host = hostTarget();
  if (rt.target !== host) {
    const wrong = addons.filter((a) => needsRebuild(a, rt));
    const never = uncompiled.filter((u) => !u.optional);
    if (wrong.length === 0 && never.length === 0) return none;
    const list = [
      ...never.map((u) => `"${u.packageName}" (${displayPath(u.source)}: a binding.gyp, never compiled)`),
      ...wrong.map((a) => `"${a.packageName}" (${displayPath(a.file)}, ${a.arch ? describeArch(a.arch) : 'unknown CPU'})`),
    ];
    throw new NoderelError('EADDON', `--rebuild-addons: cannot rebuild native addon ${list[0]} for ${rt.target} on this ${host} host: noderel compiles with the host's compiler and has no cross compiler`, {
      hint: `run \`${REBUILD_COMMAND}\` on a ${rt.target} host, or use packages that ship ${rt.target} prebuilds`,
      problems: list.slice(1).map((l) => `also native addon ${l}`),
    });
  }

  // Packages to rebuild, by app: those with a binding.gyp shipping an addon of another ABI.
  const byApp = new Map<string, Map<string, { name: string; source: string }>>();
  for (const a of addons) {
    if (!a.inDependency || !needsRebuild(a, rt)) continue;
    const source = packageSource(plan, a.packageTo);
    if (!source || !fs.existsSync(path.join(source, 'binding.gyp'))) continue;
    if (!byApp.has(a.libDir)) byApp.set(a.libDir, new Map());
    byApp.get(a.libDir)!.set(a.packageTo, { name: a.packageName, source });
  }
  // And those whose addon was never compiled (installed with --ignore-scripts).
  for (const u of uncompiled) {
    if (!byApp.has(u.libDir)) byApp.set(u.libDir, new Map());
    byApp.get(u.libDir)!.set(u.packageTo, { name: u.packageName, source: u.source });
  }
  if (byApp.size === 0) {
    opts.reporter.step(`no native addon needs a rebuild for node ${rt.version}`);
    return none;
  }
  if (opts.dryRun) {
    for (const [libDir, pkgs] of byApp) opts.reporter.info(`rebuild ${[...new Set([...pkgs.values()].map((p) => p.name))].join(', ')} (${libDir}) against node ${rt.version}'s headers`);
    return { ...none, rebuilt: new Set([...byApp.values()].flatMap((m) => [...m.keys()])) };
  }

  const nodedir = await runtimeHeaders(rt, { reporter: opts.reporter, cacheDir: opts.cacheDir, npm: opts.npm, cwd: opts.cwd });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'noderel-rebuild-'));
  const cleanup = () => fse.removeSync(tmp);
  try {
    let next = plan;
    const rebuilt = new Set<string>();
    for (const [libDir, pkgs] of byApp) {
      const stage = path.join(tmp, path.basename(libDir));
      stageNodeModules(plan, libDir, stage);
      const names = [...new Set([...pkgs.values()].map((p) => p.name))];
      opts.reporter.step(`rebuilding ${names.join(', ')} (${libDir}) against node ${rt.version}'s headers`);
      await npmRebuild(stage, names, rt, nodedir, opts.npm ?? 'npm');
      for (const packageTo of pkgs.keys()) {
        const rebuiltDir = path.join(stage, packageTo.slice(libDir.length + 1));
        next = withPackageFrom(next, packageTo, rebuiltDir, packageFiles(rebuiltDir));
        rebuilt.add(packageTo);
      }
    }
    return { plan: next, rebuilt, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

/** Copies what the plan ships under `<libDir>/node_modules/` into `<stage>/node_modules/`. */
function stageNodeModules(plan: Plan, libDir: string, stage: string): void {
  const prefix = `${libDir}/node_modules/`;
  fse.outputFileSync(path.join(stage, 'package.json'), `${JSON.stringify({ name: 'noderel-rebuild', version: '0.0.0', private: true })}\n`);
  for (const op of plan.operations) {
    if (op.kind !== 'copy' || !op.to.startsWith(prefix)) continue;
    const to = path.join(stage, op.to.slice(libDir.length + 1));
    fse.copySync(op.from, to, { dereference: true });
    fs.chmodSync(to, op.mode);
  }
}

/** `npm rebuild NAMES` in `dir` against the headers in `nodedir`; a failure shows npm's last lines. */
function npmRebuild(dir: string, names: string[], rt: Runtime, nodedir: string | undefined, npm: string): Promise<void> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    npm_config_build_from_source: 'true',
    npm_config_ignore_scripts: 'false',
    npm_config_target: rt.version,
    npm_config_runtime: 'node',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  if (nodedir) env.npm_config_nodedir = nodedir;
  delete env.NODE_OPTIONS;
  const args = ['rebuild', ...names, '--foreground-scripts', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
  return new Promise((resolve, reject) => {
    execFile(npm, args, { cwd: dir, env, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve();
      if (typeof err.code === 'string') {
        return reject(new NoderelError('ENPM', `--rebuild-addons: could not run npm (${npm}): ${err.code}`, { hint: 'install npm: it runs the addons\' build scripts' }));
      }
      const tail = `${stdout}\n${stderr}`.split('\n').map((l) => l.trimEnd()).filter(Boolean).slice(-15);
      reject(new NoderelError('EADDON', `--rebuild-addons: npm rebuild ${names.join(' ')} failed (exit ${err.code ?? 'signal'}) against node ${rt.version}'s headers${nodedir ? ` (${displayPath(nodedir)})` : ''}`, {
        hint: 'node-gyp needs python3, make and a C++ compiler (e.g. apt-get install python3 make g++); the last lines of its output follow',
        problems: tail,
      }));
    });
  });
}
