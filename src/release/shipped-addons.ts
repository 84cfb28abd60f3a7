/**
 * The native addons a release ships (the `.node` files among the plan's copies, not whatever
 * else sits in node_modules), their checks against the pinned runtime (ABI and CPU, SPEC §3),
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
 * NODE_MODULE_VERSION (or for another CPU) and that has a `binding.gyp`. N-API addons load on any Node, and files
 * whose ABI cannot be read (not addons, or stripped), are left as they are. A package without a
 * `binding.gyp` ships prebuilt binaries only and cannot be rebuilt; the check names it.
 * Rebuilding for another CPU than the host's is refused: there is no cross compiler.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NoderelError } from '../errors.js';
import { withPackageFrom, type Plan } from '../assemble/plan.js';
import { displayPath, type Reporter } from '../reporter.js';
import type { Release } from './model.js';
import {
  addonsForTarget, checkAddonAbi, checkAddonArch, describeArch, readAddon, REBUILD_COMMAND, type PackagedAddon,
} from './native-addons.js';
import { hostTarget, runtimeHeaders, type Runtime } from './runtime.js';

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

/** Every `.node` file the plan copies, with its package (the nearest `node_modules/<name>`, else the app). */
export async function shippedAddons(plan: Plan, release: Pick<Release, 'apps'>): Promise<ShippedAddon[]> {
  const out: ShippedAddon[] = [];
  for (const op of plan.operations) {
    if (op.kind !== 'copy' || !op.to.endsWith('.node')) continue;
    const app = release.apps.find((a) => op.to.startsWith(`${a.libDir}/`));
    if (!app) continue; // an overlay: not code any app loads through node_modules
    const m = /^(.*\/node_modules\/((?:@[^/]+\/)?[^/]+))\/(?!.*\/node_modules\/)(.*)$/.exec(op.to);
    const packageTo = m ? m[1]! : app.libDir;
    out.push({
      file: op.from,
      to: op.to,
      libDir: app.libDir,
      packageName: m ? m[2]! : app.name,
      packageTo,
      packageDir: packageTo,
      relPath: m ? m[3]! : op.to.slice(app.libDir.length + 1),
      inDependency: Boolean(m),
      ...(await readAddon(op.from)),
    });
  }
  return out;
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
export async function checkShippedAddons(plan: Plan, release: Pick<Release, 'apps' | 'runtime'>, opts: { rebuilt?: ReadonlySet<string>; rebuildRequested?: boolean; skip?: ReadonlySet<string> } = {}): Promise<void> {
  const rt = release.runtime;
  const addons = addonsForTarget(await shippedAddons(plan, release), rt.target, rt.modulesAbi).filter((a) => !opts.skip?.has(a.packageTo));
  const problems: string[] = [];
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
export async function rebuildAddons(plan: Plan, release: Pick<Release, 'apps' | 'runtime'>, opts: RebuildOptions): Promise<RebuildResult> {
  const rt = release.runtime;
  const none: RebuildResult = { plan, rebuilt: new Set(), cleanup: () => {} };
  const addons = addonsForTarget(await shippedAddons(plan, release), rt.target, rt.modulesAbi);
  const host = hostTarget();
  if (rt.target !== host) {
    const wrong = addons.filter((a) => needsRebuild(a, rt));
    if (wrong.length === 0) return none;
    const list = wrong.map((a) => `"${a.packageName}" (${displayPath(a.file)}, ${a.arch ? describeArch(a.arch) : 'unknown CPU'})`);
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
  const cleanup = () => fs.rmSync(tmp, { recursive: true, force: true });
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
        next = withPackageFrom(next, packageTo, path.join(stage, packageTo.slice(libDir.length + 1)));
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
  fs.mkdirSync(stage, { recursive: true });
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify({ name: 'noderel-rebuild', version: '0.0.0', private: true })}\n`);
  const made = new Set<string>();
  for (const op of plan.operations) {
    if (op.kind !== 'copy' || !op.to.startsWith(prefix)) continue;
    const to = path.join(stage, op.to.slice(libDir.length + 1));
    const dir = path.dirname(to);
    if (!made.has(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    fs.copyFileSync(op.from, to, fs.constants.COPYFILE_FICLONE);
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
