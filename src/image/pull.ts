/**
 * Pulls one platform of an image from a registry: the manifest (through an index or manifest
 * list when the reference names one), the config and the layers. OCI and Docker schema 2 both.
 * Blobs are cached by digest under `<cacheDir>/blobs/sha256/<hex>` and verified when read back.
 * `fetchImageMetadata` stops before the layers, for a push that mounts them instead.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NoderelError } from '../errors.js';
import { INDEX_TYPES, MANIFEST_TYPES, MEDIA, isDigest, platformMatches, sha256Digest, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './oci.js';
import { formatImageRef, manifestReference, parseImageRef, type ImageRef } from './reference.js';
import { RegistryClient, type RegistryClientOptions } from './registry.js';
import type { RegistryCredentials } from './credentials.js';

export interface PullOptions {
  /** Blob cache (`<cacheDir>/blobs/sha256/<hex>`); none: nothing cached. */
  cacheDir?: string;
  /** Credentials; undefined: looked up (credentials.ts); null: anonymous. */
  credentials?: RegistryCredentials | null;
  env?: NodeJS.ProcessEnv;
  /** A client to reuse (its registry and repository must be the reference's). */
  client?: RegistryClient;
}

export interface ImageMetadata {
  /** The reference as given, normalized (`docker.io/library/nginx:latest`). */
  ref: string;
  /** Where the image is: the registry host to talk to and the repository (a push there can mount its layers). */
  registry: string;
  repository: string;
  /** The digest of the single-platform manifest picked. */
  digest: string;
  /** The digest of the index the reference named, when it named one. */
  indexDigest?: string;
  manifest: ImageManifest;
  config: ImageConfig;
  configBytes: Buffer;
}

export interface PulledImage extends ImageMetadata {
  layers: { descriptor: Descriptor; data: Buffer }[];
}

const ACCEPT = [...MANIFEST_TYPES, ...INDEX_TYPES];
const CONFIG_TYPES = new Set<string>([MEDIA.ociConfig, MEDIA.dockerConfig]);

export const platformName = (p: Platform): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

function clientFor(ref: ImageRef, opts: PullOptions): RegistryClient {
  if (opts.client) return opts.client;
  const clientOpts: RegistryClientOptions = { actions: 'pull', ...(opts.env ? { env: opts.env } : {}) };
  if (opts.credentials !== undefined) clientOpts.credentials = opts.credentials;
  return new RegistryClient(ref.registry, ref.repository, clientOpts);
}

function parseJson<T>(body: Buffer, what: string): T {
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (err) {
    throw new NoderelError('EIMAGEPULL', `${what} is not valid JSON (${(err as Error).message})`);
  }
}

/** The manifest and config of `ref` for `platform` (through its index when it has one). */
export async function fetchImageMetadata(ref: string | ImageRef, platform: Platform, opts: PullOptions = {}): Promise<ImageMetadata> {
  const parsed = typeof ref === 'string' ? parseImageRef(ref) : ref;
  const name = formatImageRef(parsed);
  const client = clientFor(parsed, opts);
  let fetched = await client.getManifest(manifestReference(parsed), ACCEPT);
  let indexDigest: string | undefined;
  if (INDEX_TYPES.includes(fetched.mediaType)) {
    indexDigest = fetched.digest;
    const index = parseJson<ImageIndex>(fetched.body, `the index of ${name}`);
    const chosen = pickPlatform(index, platform, name);
    fetched = await client.getManifest(chosen.digest, MANIFEST_TYPES);
  }
  if (!MANIFEST_TYPES.includes(fetched.mediaType)) {
    throw new NoderelError('EIMAGEPULL', `${name}: the registry sent a manifest of type ${fetched.mediaType || '(none)'}`, { hint: `noderel reads ${[...MANIFEST_TYPES, ...INDEX_TYPES].join(', ')}` });
  }
  const manifest = parseJson<ImageManifest>(fetched.body, `the manifest of ${name}`);
  if (!manifest.config || !isDigest(manifest.config.digest) || !Array.isArray(manifest.layers)) {
    throw new NoderelError('EIMAGEPULL', `${name}: manifest ${fetched.digest} has no valid config descriptor and layers list`);
  }
  if (!CONFIG_TYPES.has(manifest.config.mediaType)) {
    throw new NoderelError('EIMAGEPULL', `${name}: the config is of type ${manifest.config.mediaType}, not an image config`, { hint: 'is this an artifact rather than a container image?' });
  }
  const configBytes = await readBlob(client, manifest.config, opts.cacheDir);
  const config = parseJson<ImageConfig>(configBytes, `the config of ${name}`);
  if (indexDigest === undefined && !platformMatches({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) }, platform)) {
    throw new NoderelError('EIMAGEPLATFORM', `${name} is a ${platformName(config)} image, not ${platformName(platform)}`, { hint: 'use an image (or a multi-platform index) that has that platform' });
  }
  const meta: ImageMetadata = { ref: name, registry: parsed.registry, repository: parsed.repository, digest: fetched.digest, manifest, config, configBytes };
  if (indexDigest !== undefined) meta.indexDigest = indexDigest;
  return meta;
}

/** The manifest of an index for `platform`; none: one line listing the platforms it has. */
function pickPlatform(index: ImageIndex, platform: Platform, name: string): Descriptor {
  const manifests = Array.isArray(index.manifests) ? index.manifests : [];
  const chosen = manifests.find((m) => MANIFEST_TYPES.includes(m.mediaType) && platformMatches(m.platform, platform));
  if (chosen && isDigest(chosen.digest)) return chosen;
  const have = manifests
    .map((m) => m.platform)
    .filter((p): p is Platform => p !== undefined && p.os !== 'unknown')
    .map(platformName);
  throw new NoderelError('EIMAGEPLATFORM', `${name} has no image for ${platformName(platform)}; it has ${have.length ? [...new Set(have)].join(', ') : 'no platforms listed'}`, {
    hint: 'pick a base image published for that platform, or build for one it has',
  });
}

/** Pulls `ref` for `platform`: manifest, config and every layer (from the cache when there). */
export async function pullImage(ref: string | ImageRef, platform: Platform, opts: PullOptions = {}): Promise<PulledImage> {
  const parsed = typeof ref === 'string' ? parseImageRef(ref) : ref;
  const client = clientFor(parsed, opts);
  const meta = await fetchImageMetadata(parsed, platform, { ...opts, client });
  const layers: PulledImage['layers'] = [];
  for (const descriptor of meta.manifest.layers) {
    if (!isDigest(descriptor.digest)) throw new NoderelError('EIMAGEPULL', `${meta.ref}: a layer's digest ${JSON.stringify(descriptor.digest)} is not sha256`);
    layers.push({ descriptor, data: await readBlob(client, descriptor, opts.cacheDir) });
  }
  return { ...meta, layers };
}

/** A blob from the cache (verified; a bad copy is fetched again) or the registry (then cached). */
async function readBlob(client: RegistryClient, d: Descriptor, cacheDir: string | undefined): Promise<Buffer> {
  const file = cacheDir === undefined ? undefined : path.join(cacheDir, 'blobs', 'sha256', d.digest.slice('sha256:'.length));
  if (file !== undefined) {
    const cached = readIfPresent(file);
    if (cached !== undefined && sha256Digest(cached) === d.digest) return cached;
  }
  const data = await client.getBlob(d.digest);
  if (file !== undefined) writeAtomically(file, data);
  return data;
}

function readIfPresent(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function writeAtomically(file: string, data: Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}
