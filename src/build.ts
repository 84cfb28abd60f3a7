/**
 * The build pipeline, in one place: config (load, resolve) -> release model (runtime, vm.args,
 * sys.config, dependency closures, source files read) -> plan (pure) -> shipped addons checked
 * or rebuilt -> apply (the only writer) -> tarball. The one module on the CLI side that imports
 * config/, release/, assemble/ and archive/; the CLI and library callers go through here.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadConfig } from './config/load.js';
import { configToPlain, resolveConfig, type CliOverrides, type ResolvedConfig } from './config/resolve.js';
import { applyPlan } from './assemble/apply.js';
import { describePlan, planRelease } from './assemble/plan.js';
import * as layout from './contract/layout.js';
import { makeTar } from './archive/tar.js';
import { displayPath, type Reporter } from './reporter.js';
import type { Plan, Release } from './model.js';
import { buildRelease } from './release/model.js';
import { checkShippedAddons, rebuildAddons } from './release/shipped-addons.js';

export type { CliOverrides } from './config/resolve.js';

export interface StepOptions {
  root: string;
  flags?: CliOverrides;
  reporter: Reporter;
  cacheDir?: string;
  dryRun?: boolean;
  /** `--rebuild-addons`: compile the shipped native addons against the pinned runtime's headers. */
  rebuildAddons?: boolean;
}

/** A fresh random cookie: 32 bytes, URL-safe base64 (no characters a shell or INI file minds). */
export function newCookie(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** Loads and resolves the final config (what `noderel config` prints). */
export async function finalConfig(root: string, flags: CliOverrides = {}): Promise<ResolvedConfig> {
  return resolveConfig(await loadConfig(root), flags);
}

/** The final config as YAML, as `noderel config` prints it. */
export async function finalConfigYaml(root: string, flags: CliOverrides = {}): Promise<string> {
  return YAML.stringify(configToPlain(await finalConfig(root, flags)));
}

/** Builds `_rel/<name>/`; with `dryRun`, prints the plan and writes nothing. */
export async function assemble(opts: StepOptions): Promise<{ release: Release; plan: Plan }> {
  const config = await finalConfig(opts.root, opts.flags);
  const { reporter } = opts;
  reporter.step(`assembling ${config.name}-${config.version}`);
  const release = await buildRelease(config, { reporter, cacheDir: opts.cacheDir });
  let plan = planRelease(release, newCookie());
  let cleanup = () => {};
  let rebuilt: ReadonlySet<string> | undefined;
  if (opts.rebuildAddons) {
    const r = await rebuildAddons(plan, release, { reporter, cacheDir: opts.cacheDir, cwd: config.root, dryRun: opts.dryRun });
    ({ plan, cleanup, rebuilt } = r);
  }
  try {
    // A dry run rebuilt nothing: the packages it would rebuild are not checked.
    await checkShippedAddons(plan, release, opts.dryRun ? { skip: rebuilt, reporter } : { rebuilt, rebuildRequested: opts.rebuildAddons, reporter });
    reportLeftovers(plan, reporter);
    if (opts.dryRun) {
      for (const line of describePlan(plan)) reporter.info(line);
      return { release, plan };
    }
    const outputExisted = fs.existsSync(config.outputDir);
    try {
      const { removed, skipped } = applyPlan(plan, config.outputDir);
      if (removed.length > 0) reporter.step(`removed what no installed version uses: ${removed.join(', ')}`);
      if (skipped) reporter.warn(`nothing stale was removed from ${displayPath(release.releaseDir)}: ${skipped}`);
    } catch (err) {
      // Leave no empty output directory behind that this build created.
      if (!outputExisted && fs.existsSync(config.outputDir) && fs.readdirSync(config.outputDir).length === 0) {
        fs.rmdirSync(config.outputDir);
      }
      throw err;
    }
    return { release, plan };
  } finally {
    cleanup();
  }
}

/** One line for the build leftovers the plan leaves out (see assemble/leftovers.ts). */
function reportLeftovers(plan: Plan, reporter: Reporter): void {
  const omitted = plan.omitted ?? [];
  if (omitted.length === 0) return;
  let bytes = 0;
  for (const f of omitted) bytes += fs.statSync(f, { throwIfNoEntry: false })?.size ?? 0;
  reporter.step(`leaving out ${omitted.length} build leftover${omitted.length === 1 ? '' : 's'} of native addons (object files, static libraries, node-gyp's intermediate files; ${(bytes / 1048576).toFixed(1)} MiB)`);
}

/** The closing block: where the release is and how to start, attach to and stop it. */
export function closingBlock(r: Release): string[] {
  const bin = displayPath(path.join(r.releaseDir, layout.launcher(r.name)));
  const types = r.config.nodeTypes.map((t) => t.name).join(', ');
  return [
    `Release ${r.name}-${r.version} (node ${r.runtime.version}) is ready in ${displayPath(r.releaseDir)}`,
    `Node types: ${types} (choose with REL=..., default ${r.config.defaultNodeType})`,
    '',
    `    ${bin} console       # run with a REPL inside the node`,
    `    ${bin} foreground    # run in the foreground (systemd, containers)`,
    `    ${bin} help          # every command`,
  ];
}

/** Builds the release, then writes `<output>/<name>-<vsn>.tar.gz`. */
export async function tarRelease(opts: StepOptions): Promise<{ release: Release; tarball: string }> {
  const { release, plan } = await assemble(opts);
  const tarball = path.join(release.config.outputDir, layout.tarballName(release.name, release.version));
  opts.reporter.step(`packing ${displayPath(tarball)}`);
  await makeTar(release.releaseDir, plan.units, tarball);
  return { release, tarball };
}
