/**
 * One platform's image: the base's layers, then the release's four (layers.ts), an image config
 * that runs `bin/<name> foreground` as the non-root user, and the manifest. Layers are gzipped
 * once and kept in the cache by the digest of their uncompressed tar (the diff ID), so a warm
 * build only tars and hashes; a code-only change makes one new layer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { layerTarParts } from './layer-tar.js';
import { IMAGE_UID, LAYER_KINDS, releaseLayers, type ImagePaths, type LayerKind } from './layers.js';
import { describe, jsonBytes, MEDIA, type Descriptor, type ImageConfig, type ImageManifest, type Platform } from './oci.js';
import type { BaseImage } from './base.js';

export interface Blob {
  descriptor: Descriptor;
  data: Buffer;
}

export interface PlatformImage {
  platform: Platform;
  manifest: Blob;
  config: Blob;
  /** Base layers first, then ours. */
  layers: Blob[];
  /** Ours only, by kind (what a code-only change touches). */
  ours: Record<LayerKind, Blob>;
  base: BaseImage;
  /** The manifest's annotations (title, version, created, revision, base). */
  annotations: Record<string, string>;
}

export interface ComposeInput {
  name: string;
  version: string;
  releaseDir: string;
  units: readonly string[];
  defaultNodeType: string;
  ports: readonly number[];
  paths: ImagePaths;
  platform: Platform;
  base: BaseImage;
  /** Seconds since the epoch, for every timestamp (SOURCE_DATE_EPOCH). */
  epoch: number;
  revision?: string;
  cacheDir: string;
}

/** A layer's gzip blob, from the cache when its tar was made before. */
export function layerBlob(tarParts: readonly Buffer[], cacheDir: string): { blob: Blob; diffId: string } {
  const hash = createHash('sha256');
  for (const part of tarParts) hash.update(part);
  const diffId = `sha256:${hash.digest('hex')}`;
  const file = path.join(cacheDir, 'image-layers', `${diffId.slice(7)}.tar.gz`);
  let gz: Buffer | undefined;
  try {
    gz = fs.readFileSync(file);
  } catch {
    gz = undefined;
  }
  if (gz === undefined) {
    gz = gzipSync(Buffer.concat(tarParts), { level: 6 });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, gz);
    fs.renameSync(tmp, file);
  }
  return { blob: { descriptor: describe(MEDIA.ociLayerGzip, gz), data: gz }, diffId };
}

const LAYER_COMMENT: Record<LayerKind, string> = {
  runtime: 'the Node runtime',
  dependencies: 'production dependencies',
  code: 'apps, launcher and noderel runtime',
  config: 'release config and writable directories',
};

export function composeImage(input: ComposeInput): PlatformImage {
  const entries = releaseLayers(input.releaseDir, input.units, input.paths);
  const ours = {} as Record<LayerKind, Blob>;
  const diffIds: string[] = [];
  for (const kind of LAYER_KINDS) {
    const { blob, diffId } = layerBlob(layerTarParts(entries[kind], input.epoch), input.cacheDir);
    ours[kind] = blob;
    diffIds.push(diffId);
  }
  const created = new Date(input.epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
  const annotations = imageAnnotations(input, created);
  const configJson = imageConfig(input, diffIds, created, annotations);
  const config: Blob = { descriptor: describe(MEDIA.ociConfig, configJson), data: configJson };
  const baseLayers: Blob[] = input.base.layers.map((l) => ({ descriptor: ociLayerDescriptor(l.descriptor), data: l.data }));
  const layers = [...baseLayers, ...LAYER_KINDS.map((k) => ours[k])];
  const manifestDoc: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: config.descriptor,
    layers: layers.map((l) => l.descriptor),
    annotations,
  };
  const manifestJson = jsonBytes(manifestDoc);
  return {
    platform: input.platform,
    manifest: { descriptor: describe(MEDIA.ociManifest, manifestJson, { platform: input.platform }), data: manifestJson },
    config,
    layers,
    ours,
    base: input.base,
    annotations,
  };
}

/** Docker's layer media types as their OCI equivalents (the same bytes). */
function ociLayerDescriptor(d: Descriptor): Descriptor {
  const mediaType = d.mediaType === MEDIA.dockerLayerGzip ? MEDIA.ociLayerGzip : d.mediaType;
  return { mediaType, digest: d.digest, size: d.size };
}

function imageAnnotations(input: ComposeInput, created: string): Record<string, string> {
  return {
    'org.opencontainers.image.created': created,
    'org.opencontainers.image.title': input.name,
    'org.opencontainers.image.version': input.version,
    ...(input.revision ? { 'org.opencontainers.image.revision': input.revision } : {}),
    ...(input.base.digest ? { 'org.opencontainers.image.base.digest': input.base.digest } : {}),
    ...(input.base.ref.startsWith('oci-layout:') || input.base.ref.startsWith('docker-archive:') ? {} : { 'org.opencontainers.image.base.name': input.base.ref }),
  };
}

/** The base's PATH (or Debian's default) with the release's bin/ appended. */
function envOf(input: ComposeInput): string[] {
  const baseEnv = input.base.config.config?.Env ?? [];
  const ours = new Map<string, string>([
    ['REL', input.defaultNodeType],
    ['RELEASE_TMP', input.paths.tmp],
    ['RUNNER_LOG_DIR', input.paths.logs],
  ]);
  const out: string[] = [];
  let sawPath = false;
  for (const kv of baseEnv) {
    const key = kv.slice(0, kv.indexOf('='));
    if (ours.has(key)) continue;
    if (key === 'PATH') {
      sawPath = true;
      out.push(`${kv}:${input.paths.root}/bin`);
    } else out.push(kv);
  }
  if (!sawPath) out.unshift(`PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${input.paths.root}/bin`);
  for (const [k, v] of ours) out.push(`${k}=${v}`);
  return out;
}

function imageConfig(input: ComposeInput, diffIds: string[], created: string, annotations: Record<string, string>): Buffer {
  const base = input.base.config;
  const doc: ImageConfig = {
    created,
    architecture: input.platform.architecture,
    os: input.platform.os,
    ...(input.platform.variant ? { variant: input.platform.variant } : {}),
    config: {
      User: `${IMAGE_UID}:${IMAGE_UID}`,
      Env: envOf(input),
      Entrypoint: [`${input.paths.root}/bin/${input.name}`, 'foreground'],
      WorkingDir: input.paths.root,
      ...(input.ports.length > 0 ? { ExposedPorts: Object.fromEntries(input.ports.map((p) => [`${p}/tcp`, {}])) } : {}),
      Labels: { ...(base.config?.Labels ?? {}), ...annotations },
      StopSignal: 'SIGTERM',
    },
    rootfs: { type: 'layers', diff_ids: [...base.rootfs.diff_ids, ...diffIds] },
    history: [
      ...(base.history ?? []),
      ...LAYER_KINDS.map((k) => ({ created, created_by: `noderel image: ${LAYER_COMMENT[k]}`, comment: `${input.name} ${input.version}` })),
    ],
  };
  return jsonBytes(doc);
}
