/**
 * The one resolved, immutable release model: built once from the resolved config, the pinned
 * runtime, vm.args, sys.config, each app's dependency closure and every source file the release
 * ships (release/sources.ts). The plan, the tarball and the templates all read it; nothing
 * downstream reaches back to the config files or the disk for them.
 */
import path from 'node:path';
import YAML from 'yaml';
import { NoderelError, Problems } from '../errors.js';
import { displayPath, type Reporter } from '../reporter.js';
import { noderelVersion } from '../paths.js';
import { configToPlain, type ResolvedConfig } from '../config/resolve.js';
import { checkVmArgFlags, flattenVmArgs, loadVmArgs, type VmArgs } from '../config/vm-args.js';
import { loadSysConfig, type SysConfigPath } from '../config/sys-config.js';
import { isKnownFlag, resolveRuntime, runtimeFlagTypes, runtimeFlags, type Runtime } from './runtime.js';
import { dependencyTrees, productionDependencies, type DependencyPackage } from './deps.js';
import { readSources, type AppWithDeps } from './sources.js';
import type { Release, ReleaseApp } from '../model.js';
import type { ManifestAppJson, ManifestJson } from '../contract/manifest.js';
import { renderReleaseEnv } from '../contract/release-env.js';
import { appDir, hookFile } from '../contract/layout.js';

export type { Release, ReleaseApp } from '../model.js';

export interface ModelOptions {
  reporter: Reporter;
  cacheDir?: string;
}

/** release.json (contract/manifest.ts), from the resolved config and the model's apps. */
function manifestOf(
  c: ResolvedConfig,
  runtime: Runtime,
  apps: readonly Pick<ReleaseApp, 'name' | 'version' | 'libDir' | 'type' | 'entry' | 'ready' | 'startTimeoutMs' | 'args' | 'cwd'>[],
  sysConfigSrc: boolean,
  sysConfigTyped: readonly SysConfigPath[],
): ManifestJson {
  const app = (a: (typeof apps)[number]): ManifestAppJson => ({
    version: a.version, dir: a.libDir, type: a.type, entry: a.entry, ready: a.ready, start_timeout_ms: a.startTimeoutMs,
    ...(a.type === 'program' ? { args: [...a.args], cwd: a.cwd } : {}),
  });
  return {
    name: c.name,
    version: c.version,
    node_version: runtime.version,
    node_target: runtime.target,
    noderel_version: noderelVersion,
    default_node_type: c.defaultNodeType,
    sys_config_src: sysConfigSrc,
    // The unquoted `${VAR}` values of a sys.config.src: typed as YAML would type them at launch.
    ...(sysConfigSrc ? { sys_config_typed: sysConfigTyped } : {}),
    apps: Object.fromEntries(apps.map((a) => [a.name, app(a)])),
    node_types: Object.fromEntries(
      c.nodeTypes.map((t) => [t.name, { apps: [...t.apps], workers: t.workers, process_name: t.processName }]),
    ),
    hooks: Object.fromEntries(Object.keys(c.hooks).map((h) => [h, hookFile(c.version, h)])),
  };
}

/** Builds the release model; every problem found on the way is reported in one error. */
export async function buildRelease(config: ResolvedConfig, opts: ModelOptions): Promise<Release> {
  const runtime = await resolveRuntime(config.runtime, { reporter: opts.reporter, cacheDir: opts.cacheDir });
  const problems = new Problems();

  let vmArgs: VmArgs | undefined;
  if (config.vmArgs) {
    vmArgs = loadVmArgs(config.vmArgs);
    const [flags, types] = await Promise.all([runtimeFlags(runtime, opts.cacheDir), runtimeFlagTypes(runtime, opts.cacheDir)]);
    const typeOf = (name: string) => types.get(name);
    for (const p of checkVmArgFlags(vmArgs, (f) => isKnownFlag(flags, f), (abs) => displayPath(abs), { nodeVersion: runtime.version, typeOf })) {
      problems.add('', p);
    }
    if (vmArgs.setcookie) {
      opts.reporter.warn(`${displayPath(vmArgs.setcookie.file)}:${vmArgs.setcookie.line}: -setcookie puts the cookie in a file shipped with the release; prefer the INI file or <NAME>_COOKIE`);
    }
  }

  const { config: sysConfig, isSrc, typed = [] } = config.sysConfig
    ? loadSysConfig(config.sysConfig, { knownApps: config.apps.map((a) => a.name) })
    : { config: {}, isSrc: false, typed: [] };

  // One loaded npm tree per project root, shared by the apps it holds (a workspaces monorepo).
  const trees = dependencyTrees();
  const resolved: AppWithDeps[] = [];
  for (const a of config.apps) {
    let deps: DependencyPackage[] = [];
    try {
      deps = await productionDependencies(a.dir, a.name, trees);
    } catch (err) {
      if (!(err instanceof NoderelError)) throw err;
      problems.add('', err.message);
    }
    resolved.push({ ...a, deps, libDir: appDir(a.name, a.version) });
  }

  problems.throwIfAny('EBUILD', `release ${config.name}-${config.version} cannot be built`);
  const { apps, runtimeFiles, overlays, launcherTemplate } = readSources(config, resolved);
  const manifest = manifestOf(config, runtime, apps, isSrc, typed);

  return Object.freeze({
    config,
    name: config.name,
    version: config.version,
    noderelVersion,
    runtime,
    apps,
    vmArgs,
    // Paths relative to the project, not the working directory: the same inputs, the same bytes.
    vmArgsText: vmArgs ? flattenVmArgs(vmArgs, (abs) => path.relative(config.root, abs)) : '',
    sysConfig,
    sysConfigSrc: isSrc,
    releaseDir: path.join(config.outputDir, config.name),
    manifest,
    releaseEnv: renderReleaseEnv(manifest),
    configYaml: YAML.stringify(configToPlain(config)),
    launcherTemplate,
    runtimeFiles,
    overlays,
  });
}
