/**
 * The release's steps, run in a fixed order on one resolved model: `assemble` writes
 * `_rel/<name>/`, `tar` packs it. The CLI and library callers both go through here.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../config/load.js';
import { resolveConfig, type CliOverrides, type ResolvedConfig } from '../config/resolve.js';
import { applyPlan } from '../assemble/apply.js';
import { describePlan, planRelease, type Plan } from '../assemble/plan.js';
import * as layout from '../assemble/layout.js';
import { makeTar } from '../archive/tar.js';
import { displayPath, type Reporter } from '../reporter.js';
import { buildRelease, type Release } from './model.js';
import { checkAddonAbi, readAddonAbi, type NativeAddon } from './native-addons.js';
import { NoderelError } from '../errors.js';

export interface StepOptions {
  root: string;
  flags?: CliOverrides;
  reporter: Reporter;
  cacheDir?: string;
  dryRun?: boolean;
}

/** A fresh random cookie: 32 bytes, URL-safe base64 (no characters a shell or INI file minds). */
export function newCookie(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/**
 * Native addons among the files the plan ships (not devDependencies left in node_modules)
 * must match the pinned runtime's ABI; a mismatch fails the build naming each module.
 */
async function checkShippedAddons(plan: Plan, modulesAbi: number): Promise<void> {
  const addons: NativeAddon[] = [];
  for (const op of plan.operations) {
    if (op.kind !== 'copy' || !op.from.endsWith('.node')) continue;
    const pkg = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*\/node_modules\/)/.exec(op.to)?.[1] ?? op.to.split('/')[1] ?? op.to;
    addons.push({ file: op.from, packageName: pkg, abi: await readAddonAbi(op.from) });
  }
  const problems = checkAddonAbi(addons, modulesAbi);
  if (problems.length > 0) throw new NoderelError('EADDON', problems[0]!, { problems: problems.slice(1) });
}

/** Loads and resolves the final config (what `noderel config` prints). */
export async function finalConfig(root: string, flags: CliOverrides = {}): Promise<ResolvedConfig> {
  return resolveConfig(await loadConfig(root), flags);
}

/** Builds `_rel/<name>/`; with `dryRun`, prints the plan and writes nothing. */
export async function assemble(opts: StepOptions): Promise<{ release: Release; plan: Plan }> {
  const config = await finalConfig(opts.root, opts.flags);
  const { reporter } = opts;
  reporter.step(`assembling ${config.name}-${config.version}`);
  const release = await buildRelease(config, { reporter, cacheDir: opts.cacheDir });
  const plan = planRelease(release, newCookie());
  await checkShippedAddons(plan, release.runtime.modulesAbi);
  if (opts.dryRun) {
    for (const line of describePlan(plan)) reporter.info(line);
    return { release, plan };
  }
  const outputExisted = fs.existsSync(config.outputDir);
  try {
    applyPlan(plan, config.outputDir);
  } catch (err) {
    // Leave no empty output directory behind that this build created.
    if (!outputExisted && fs.existsSync(config.outputDir) && fs.readdirSync(config.outputDir).length === 0) {
      fs.rmdirSync(config.outputDir);
    }
    throw err;
  }
  return { release, plan };
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
