/**
 * `noderel image`: the release built for each target, on the base, as an OCI image (one per
 * target, and an index over them when there are several), then written where asked: a registry
 * (`--push`), an OCI layout (`--oci-layout`), a `docker load` archive (`--tar`). No daemon, no
 * container tool: the layers are our own tars, the rest is JSON and HTTP.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { archiveMtime } from '../archive/tar.js';
import { assemble, type StepOptions } from '../build.js';
import { NoderelError } from '../errors.js';
import { displayPath } from '../reporter.js';
import type { Release } from '../model.js';
import { defaultCacheDir } from '../release/runtime.js';
import { RELEASE_TARGETS } from '../targets.js';
import { checkBaseRuntimeLibs, loadBase } from './base.js';
import { composeImage, type Blob, type PlatformImage } from './compose.js';
import { imagePaths } from './layers.js';
import { describe, jsonBytes, MEDIA, platformOfTarget, type ImageIndex } from './oci.js';
import { allBlobs, writeDockerArchive, writeOciLayout } from './outputs.js';
import { pushImage } from './push.js';
import { parseImageRef } from './reference.js';

export interface ImageOptions extends StepOptions {
  /** `--base`: a registry reference, `oci-layout:DIR[:TAG]` or `docker-archive:FILE`. */
  base: string;
  /** `--target`, comma-separated; default: the release's own target. */
  targets?: readonly string[];
  push?: string;
  /** `DIR` or `DIR:TAG` (default tag: the release version). */
  ociLayout?: string;
  tar?: string;
}

export interface ImageResult {
  /** The digest of what was built: the manifest, or the index over several. */
  digest: string;
  images: PlatformImage[];
  index?: Blob;
  /** Blob bytes sent to the registry (`--push`). */
  uploaded?: number;
}

function checkOptions(o: ImageOptions): void {
  if (o.push === undefined && o.ociLayout === undefined && o.tar === undefined) {
    throw new NoderelError('EUSAGE', 'noderel image needs somewhere to put the image', { hint: 'give --push REF, --oci-layout DIR or --tar FILE' });
  }
  if (o.base.trim() === '') {
    throw new NoderelError('EUSAGE', 'noderel image needs a base image (--base): the runtime needs glibc and libstdc++ from it', { hint: 'e.g. --base debian:bookworm-slim, or --base oci-layout:DIR' });
  }
  for (const t of o.targets ?? []) {
    if (!t.startsWith('linux-') || !RELEASE_TARGETS.includes(t)) {
      throw new NoderelError('EUSAGE', `--target ${t}: an image runs Linux; choose from ${RELEASE_TARGETS.filter((x) => x.startsWith('linux-')).join(', ')}`);
    }
  }
  // references and paths checked before the build, not after it
  if (o.push !== undefined) parseImageRef(o.push);
  if (!o.base.startsWith('oci-layout:') && !o.base.startsWith('docker-archive:')) parseImageRef(o.base);
  if (o.tar !== undefined && fs.existsSync(o.tar) && fs.statSync(o.tar).isDirectory()) {
    throw new NoderelError('EUSAGE', `--tar ${o.tar} is a directory`, { hint: 'give the archive file to write, e.g. --tar kazoo.tar' });
  }
  const repeated = (o.targets ?? []).find((t, i, all) => all.indexOf(t) !== i);
  if (repeated !== undefined) throw new NoderelError('EUSAGE', `--target names ${repeated} twice`, { hint: 'name each target once, e.g. --target linux-x64,linux-arm64' });
  if ((o.targets?.length ?? 0) > 1 && o.tar !== undefined) {
    throw new NoderelError('EUSAGE', '--tar writes one platform (docker load takes one), and several --target were given', { hint: 'use --oci-layout or --push for a multi-platform image, or one --target with --tar' });
  }
}

/** `git rev-parse HEAD` of the project, when it is a git checkout. */
function gitRevision(root: string): string | undefined {
  const r = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' });
  return r.status === 0 && /^[0-9a-f]{40}$/.test(r.stdout.trim()) ? r.stdout.trim() : undefined;
}

/** Builds the release for `target` (the first target in the usual output; others beside it). */
async function buildFor(o: ImageOptions, target: string | undefined, first: boolean, outputDir: string | undefined) {
  const flags = { ...o.flags, ...(target === undefined ? {} : { target }) };
  if (!first && target !== undefined) Object.assign(flags, { outputDir: path.join(outputDir!, `.image-${target}`), force: true });
  return assemble({ ...o, flags });
}

export async function buildImage(o: ImageOptions): Promise<ImageResult> {
  checkOptions(o);
  const cacheDir = o.cacheDir ?? defaultCacheDir();
  const targets: (string | undefined)[] = o.targets && o.targets.length > 0 ? [...o.targets] : [undefined];
  const epoch = Math.floor(archiveMtime().getTime() / 1000);
  const images: PlatformImage[] = [];
  let outputDir: string | undefined;
  let revision: string | undefined;
  for (const [i, target] of targets.entries()) {
    const { release, plan } = await buildFor(o, target, i === 0, outputDir);
    outputDir ??= release.config.outputDir;
    if (!release.runtime.target.startsWith('linux-')) {
      throw new NoderelError('EUSAGE', `the release's runtime is ${release.runtime.target}, and an image runs Linux`, { hint: 'give --target linux-x64 (or linux-arm64)' });
    }
    const platform = platformOfTarget(release.runtime.target);
    o.reporter.step(`imaging ${release.name}-${release.version} for ${platform.os}/${platform.architecture} on ${o.base}`);
    const base = await loadBase(o.base, platform, { cacheDir });
    checkBaseRuntimeLibs(base, cacheDir);
    const ports = exposedPorts(release);
    revision ??= gitRevision(release.config.root) ?? '';
    images.push(
      composeImage({
        name: release.name,
        version: release.version,
        releaseDir: release.releaseDir,
        units: plan.units,
        defaultNodeType: release.config.defaultNodeType,
        ports,
        paths: imagePaths(release.name),
        platform,
        base,
        epoch,
        ...(revision !== '' ? { revision } : {}),
        cacheDir,
      }),
    );
  }
  const index = images.length > 1 ? imageIndex(images, images[0]!.annotations) : undefined;
  const top = index ?? images[0]!.manifest;
  const result: ImageResult = {
    digest: top.descriptor.digest,
    images,
    ...(index ? { index } : {}),
  };
  await writeOutputs(o, images, index, top, epoch, result);
  return result;
}

/**
 * The ports the image exposes: the apps' readiness ports, and sys.config's `port` / `*_port`
 * keys of the apps (the release's own record of what its apps listen on).
 */
function exposedPorts(release: Release): number[] {
  const ports = new Set<number>();
  for (const app of release.apps) {
    if (app.ready.type === 'port') ports.add(app.ready.port);
    for (const [key, value] of Object.entries(release.sysConfig[app.name] ?? {})) {
      if ((key === 'port' || key.endsWith('_port')) && Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536) ports.add(value as number);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

function imageIndex(images: readonly PlatformImage[], annotations?: Record<string, string>): Blob {
  const doc: ImageIndex = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: images.map((img) => ({ ...img.manifest.descriptor, platform: img.platform })),
    ...(annotations ? { annotations } : {}),
  };
  const data = jsonBytes(doc);
  return { descriptor: describe(MEDIA.ociIndex, data), data };
}

async function writeOutputs(o: ImageOptions, images: PlatformImage[], index: Blob | undefined, top: Blob, epoch: number, result: ImageResult): Promise<void> {
  const first = images[0]!;
  const name = first.annotations['org.opencontainers.image.title']!;
  // a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}: a version's `+build` becomes `_build`
  const version = first.annotations['org.opencontainers.image.version']!.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 128);
  if (o.ociLayout !== undefined) {
    const m = /^(.*?):([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/.exec(o.ociLayout);
    const [dir, tag] = m ? [m[1]!, m[2]!] : [o.ociLayout, version];
    writeOciLayout(path.resolve(dir), tag, top, allBlobs(images, index));
    o.reporter.step(`wrote ${displayPath(path.resolve(dir))} (OCI layout, tag ${tag})`);
  }
  if (o.tar !== undefined) {
    await writeDockerArchive(path.resolve(o.tar), `${name}:${version}`, first, epoch);
    o.reporter.step(`wrote ${displayPath(path.resolve(o.tar))} (docker load / podman load: ${name}:${version})`);
  }
  if (o.push !== undefined) {
    const { uploaded } = await pushImage(o.push, images, index, { reporter: o.reporter });
    result.uploaded = uploaded;
  }
}
