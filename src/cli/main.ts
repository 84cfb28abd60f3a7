#!/usr/bin/env node
/**
 * The `noderel` command. It only maps flags to the library (a thin CLI, after vite's cli.ts),
 * and it is the one place that prints errors and chooses exit codes: 1 for an expected
 * error (one line), 70 for a bug (with its stack).
 */
import path from 'node:path';
import { Command } from 'commander';
import { isNoderelError, NoderelError } from '../errors.js';
import { createReporter } from '../reporter.js';
import fs from 'node:fs';
import { assemble, closingBlock, finalConfig, finalConfigYaml, tarRelease, type CliOverrides } from '../build.js';
import { renderSystemdUnit } from '../systemd.js';
import { buildImage } from '../image/image.js';
import { initProject } from '../init/init.js';
import { noderelVersion } from '../paths.js';

interface CommonOptions {
  root: string;
  output?: string;
  force?: boolean;
  quiet?: boolean;
  relVersion?: string;
  runtime?: string;
  target?: string;
  cacheDir?: string;
  dryRun?: boolean;
  rebuildAddons?: boolean;
}

function overrides(o: CommonOptions): CliOverrides {
  return { outputDir: o.output, force: o.force, relVersion: o.relVersion, runtime: o.runtime, target: o.target };
}

function withCommon(cmd: Command): Command {
  return cmd
    .option('--root <dir>', 'the project directory (holding rel/)', process.cwd())
    .option('-o, --output <dir>', 'output directory (default: output_dir of the config, _rel)')
    .option('--force', 'allow an output directory outside the project')
    .option('--rel-version <vsn>', 'override the release version')
    .option('--runtime <vsn>', 'override the runtime pin: system or an exact Node version')
    .option('--target <os-arch>', 'override the runtime target, e.g. linux-arm64')
    .option('--cache-dir <dir>', 'where fetched runtimes are cached')
    .option('-q, --quiet', 'print nothing but errors');
}

/** The options of the commands that build the release (build, tar). */
function withBuild(cmd: Command): Command {
  return withCommon(cmd).option('--rebuild-addons', "rebuild the native addons the release ships against the pinned runtime's headers (never in the project's node_modules)");
}

export function program(): Command {
  const prog = new Command('noderel')
    .description('Build self-contained Node.js releases: your apps, their production dependencies, a pinned Node runtime and a launcher.')
    .version(noderelVersion)
    .showHelpAfterError();

  withBuild(prog.command('build', { isDefault: true }).description('assemble _rel/<name>/: the apps, their production dependencies, the pinned runtime and bin/<name>'))
    .option('--dry-run', 'print the plan, write nothing')
    .action(async (o: CommonOptions) => {
      const reporter = createReporter({ quiet: o.quiet });
      const { release } = await assemble({ root: path.resolve(o.root), flags: overrides(o), reporter, cacheDir: o.cacheDir, dryRun: o.dryRun, rebuildAddons: o.rebuildAddons });
      if (!o.dryRun) reporter.block(closingBlock(release));
    });

  withBuild(prog.command('tar').description('build the release and write _rel/<name>-<vsn>.tar.gz (reproducible)')).action(
    async (o: CommonOptions) => {
      const reporter = createReporter({ quiet: o.quiet });
      const { tarball } = await tarRelease({ root: path.resolve(o.root), flags: overrides(o), reporter, cacheDir: o.cacheDir, rebuildAddons: o.rebuildAddons });
      if (!o.quiet) process.stdout.write(`${tarball}\n`);
    },
  );

  withCommon(prog.command('config').description('print the final config (relx.config <- relx.config.script <- flags) as YAML')).action(
    async (o: CommonOptions) => {
      process.stdout.write(await finalConfigYaml(path.resolve(o.root), overrides(o)));
    },
  );

  withBuild(prog.command('image').description('build an OCI image of the release (no Docker daemon): on --base, layered runtime / dependencies / code / config; to a registry, an OCI layout or a docker load archive'))
    .option('--base <ref>', 'the base image: a registry reference (debian:bookworm-slim), oci-layout:DIR[:TAG] or docker-archive:FILE; it must have glibc and libstdc++', '')
    .option('--push <ref>', 'push the image to a registry, e.g. registry.example.com/team/kazoo:4.3.0')
    .option('--oci-layout <dir[:tag]>', 'write the image into an OCI image layout directory (tag: the release version)')
    .option('--tar <file>', 'write an archive that docker load and podman load take (one target)')
    .action(async (o: CommonOptions & { base: string; push?: string; ociLayout?: string; tar?: string }) => {
      const reporter = createReporter({ quiet: o.quiet, out: process.stderr });
      const targets = o.target === undefined ? undefined : o.target.split(',').map((t) => t.trim()).filter((t) => t !== '');
      const flags = { ...overrides(o), target: undefined };
      const result = await buildImage({
        root: path.resolve(o.root), flags, reporter, cacheDir: o.cacheDir, rebuildAddons: o.rebuildAddons,
        base: o.base, push: o.push, ociLayout: o.ociLayout, tar: o.tar, ...(targets ? { targets } : {}),
      });
      process.stdout.write(`${result.digest}\n`);
    });

  withCommon(prog.command('systemd').description('write a systemd template unit, <name>@.service (one instance per node type), for the release installed at --prefix'))
    .option('--prefix <dir>', 'where the release is installed on the target host (its root)', '')
    .option('--user <user>', 'the user and group the node runs as')
    .option('--unit-file <file>', 'write the unit there instead of to stdout')
    .option('--journal', 'run the node in the foreground under systemd (Type=exec), logging to the journal, readiness still waited for')
    .action(async (o: CommonOptions & { prefix: string; user?: string; unitFile?: string; journal?: boolean }) => {
      const config = await finalConfig(path.resolve(o.root), overrides(o));
      const prefix = o.prefix === '' ? `/opt/${config.name}` : o.prefix;
      if (!path.isAbsolute(prefix)) throw new NoderelError('EUSAGE', `--prefix must be an absolute path, found ${JSON.stringify(prefix)}`);
      const unit = renderSystemdUnit(config, { prefix: prefix.replace(/\/+$/, ''), ...(o.user === undefined ? {} : { user: o.user }), ...(o.journal ? { journal: true } : {}) });
      if (o.unitFile === undefined) process.stdout.write(unit);
      else {
        try {
          fs.writeFileSync(o.unitFile, unit);
        } catch (err) {
          throw new NoderelError('EUSAGE', `cannot write the unit to ${o.unitFile}: ${(err as Error).message}`, { hint: 'give --unit-file a path in a writable directory' });
        }
      }
    });

  prog
    .command('init')
    .description("write a starter rel/ for an existing Node project (from its package.json)")
    .option('--root <dir>', 'the project directory', process.cwd())
    .option('--entry <file>', 'the program entry (default: package.json main or bin)')
    .option('--port <port>', 'readiness: the TCP port the program listens on')
    .option('--ready-output <pattern>', 'readiness: a pattern the program prints when ready')
    .option('--runtime <vsn>', 'runtime pin (default: the running Node version)')
    .option('--force', 'overwrite an existing rel/ config')
    .action((o: { root: string; entry?: string; port?: string; readyOutput?: string; runtime?: string; force?: boolean }) => {
      const reporter = createReporter();
      initProject({ root: path.resolve(o.root), entry: o.entry, port: o.port === undefined ? undefined : Number(o.port), readyOutput: o.readyOutput, runtime: o.runtime, force: o.force, reporter });
    });

  return prog;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return 0;
  } catch (err) {
    if (isNoderelError(err)) {
      process.stderr.write(`noderel: ${err.format()}\n`);
      return 1;
    }
    process.stderr.write(`noderel: internal error (a bug; please report it)\n${err instanceof Error ? err.stack : String(err)}\n`);
    return 70;
  }
}

process.exitCode = await main(process.argv);
