/**
 * The base image under the release's layers: from a registry (`--base debian:bookworm-slim`,
 * through the Registry HTTP API v2), an OCI image layout on disk (`oci-layout:DIR[:TAG]`), or a
 * `docker save` archive (`docker-archive:FILE`); one platform of it. And the check that the base
 * can run the pinned Node runtime, which links glibc and libstdc++ dynamically.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { NoderelError } from '../errors.js';
import { listTar } from './layer-tar.js';
import { INDEX_TYPES, isDigest, MEDIA, platformMatches, sha256Digest, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './oci.js';
import { platformName, pullImage } from './pull.js';

export interface BaseLayer {
  descriptor: Descriptor;
  data: Buffer;
}

export interface BaseImage {
  /** As given (`--base`). */
  ref: string;
  /** The base manifest's digest, when it has one (registry, OCI layout). */
  digest?: string;
  config: ImageConfig;
  layers: BaseLayer[];
  /** For a registry base: where its blobs already are (a push to the same registry mounts them). */
  registry?: { host: string; repository: string };
}

export interface BaseOptions {
  cacheDir: string;
}


/** Reads the base image for `platform`. */
export async function loadBase(ref: string, platform: Platform, opts: BaseOptions): Promise<BaseImage> {
  if (ref.startsWith('oci-layout:')) return fromOciLayout(ref, platform);
  if (ref.startsWith('docker-archive:')) return fromDockerArchive(ref, platform);
  const pulled = await pullImage(ref, platform, { cacheDir: path.join(opts.cacheDir, 'image-blobs') });
  return {
    ref,
    digest: pulled.digest,
    config: pulled.config,
    layers: pulled.layers,
    registry: { host: pulled.registry, repository: pulled.repository },
  };
}

function readJson<T>(file: string, what: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new NoderelError('EBASE', `${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { hint: 'give --base oci-layout:DIR where DIR holds an OCI image layout (index.json, blobs/)' });
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new NoderelError('EBASE', `${what}: ${file} is not valid JSON`);
  }
}

function layoutBlob(dir: string, digest: string): Buffer {
  if (!isDigest(digest)) throw new NoderelError('EBASE', `the OCI layout ${dir} names a blob ${JSON.stringify(digest)} that is not a sha256 digest`);
  const file = path.join(dir, 'blobs', 'sha256', digest.slice(7));
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch {
    throw new NoderelError('EBASE', `the OCI layout ${dir} lacks the blob ${digest} (${file})`, { hint: 'copy the image again (skopeo copy ... oci:DIR:TAG)' });
  }
  if (sha256Digest(data) !== digest) throw new NoderelError('EBASE', `the OCI layout ${dir}: blob ${file} does not match its digest ${digest}`);
  return data;
}

/** `oci-layout:DIR[:TAG]`: the manifest tagged TAG (ref.name), or the only one. */
function fromOciLayout(ref: string, platform: Platform): BaseImage {
  const spec = ref.slice('oci-layout:'.length);
  const m = /^(.*?)(?::([A-Za-z0-9_.-]+))?$/.exec(spec)!;
  const dir = fs.existsSync(spec) ? spec : m[1]!;
  const tag = fs.existsSync(spec) ? undefined : m[2];
  const index = readJson<ImageIndex>(path.join(dir, 'index.json'), `--base ${ref}`);
  const entries = index.manifests ?? [];
  const named = tag === undefined ? entries : entries.filter((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (named.length !== 1) {
    const tags = entries.map((d) => d.annotations?.['org.opencontainers.image.ref.name']).filter(Boolean);
    throw new NoderelError('EBASE', `--base ${ref}: ${named.length === 0 ? 'no image' : 'several images'} ${tag === undefined ? 'in' : `tagged ${tag} in`} ${dir}${tags.length ? ` (tags: ${tags.join(', ')})` : ''}`, { hint: 'name one: --base oci-layout:DIR:TAG' });
  }
  let desc = named[0]!;
  if (INDEX_TYPES.includes(desc.mediaType)) {
    const inner = JSON.parse(layoutBlob(dir, desc.digest).toString('utf8')) as ImageIndex;
    const pick = inner.manifests.find((d) => platformMatches(d.platform, platform));
    if (pick === undefined) {
      throw new NoderelError('EBASE', `--base ${ref} has no ${platformName(platform)} image (it has ${inner.manifests.map((d) => (d.platform ? platformName(d.platform) : '?')).join(', ')})`);
    }
    desc = pick;
  }
  const manifest = JSON.parse(layoutBlob(dir, desc.digest).toString('utf8')) as ImageManifest;
  const config = JSON.parse(layoutBlob(dir, manifest.config.digest).toString('utf8')) as ImageConfig;
  checkPlatform(ref, config, platform);
  return { ref, digest: desc.digest, config, layers: manifest.layers.map((d) => ({ descriptor: d, data: layoutBlob(dir, d.digest) })) };
}

/** `docker-archive:FILE` (`docker save`): its one image; layers as they are (plain tar or gzip). */
async function fromDockerArchive(ref: string, platform: Platform): Promise<BaseImage> {
  const file = ref.slice('docker-archive:'.length);
  if (!fs.existsSync(file)) throw new NoderelError('EBASE', `--base ${ref}: ${file} does not exist`, { hint: 'give the file docker save wrote: --base docker-archive:FILE' });
  const members = new Map<string, Buffer>();
  const links = new Map<string, string>();
  try {
    await tar.list({
      file,
      onReadEntry: (entry) => {
        const name = entry.path.replace(/^\.\//, '');
        if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
          // older docker save archives link <id>/layer.tar to the layer stored once
          const target = String(entry.linkpath ?? '');
          links.set(name, entry.type === 'Link' ? target.replace(/^\.\//, '') : path.posix.normalize(path.posix.join(path.posix.dirname(name), target)));
          entry.resume();
          return;
        }
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => members.set(entry.path.replace(/^\.\//, ''), Buffer.concat(chunks)));
      },
    });
  } catch (err) {
    throw new NoderelError('EBASE', `--base ${ref}: ${file} is not a tar archive (${(err as Error).message})`);
  }
  const manifestJson = members.get('manifest.json');
  if (manifestJson === undefined) throw new NoderelError('EBASE', `--base ${ref}: ${file} has no manifest.json; it is not a docker save archive`);
  const images = JSON.parse(manifestJson.toString('utf8')) as { Config: string; Layers: string[] }[];
  if (images.length !== 1) throw new NoderelError('EBASE', `--base ${ref}: ${file} holds ${images.length} images; save one image per archive`);
  const member = (name: string) => {
    let real = name;
    for (let hops = 0; links.has(real) && hops < 8; hops++) real = links.get(real)!;
    const data = members.get(real);
    if (data === undefined) throw new NoderelError('EBASE', `--base ${ref}: ${file} lacks ${name}, which its manifest.json names`);
    return data;
  };
  const config = JSON.parse(member(images[0]!.Config).toString('utf8')) as ImageConfig;
  checkPlatform(ref, config, platform);
  const layers = images[0]!.Layers.map((name) => {
    const data = member(name);
    const gz = data[0] === 0x1f && data[1] === 0x8b;
    return { descriptor: { mediaType: gz ? MEDIA.ociLayerGzip : MEDIA.ociLayer, digest: sha256Digest(data), size: data.length }, data };
  });
  return { ref, config, layers };
}

function checkPlatform(ref: string, config: ImageConfig, platform: Platform): void {
  if (!platformMatches({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) }, platform)) {
    throw new NoderelError('EBASE', `--base ${ref} is a ${config.os}/${config.architecture} image, the release's runtime is ${platformName(platform)}`, { hint: 'use a base for that platform (or a multi-platform base from a registry or OCI layout index)' });
  }
}

/**
 * The base has glibc (`libc.so.6`) and libstdc++ (`libstdc++.so.6`) in a library directory and
 * a `bin/sh`, or says which it lacks. Whiteouts in upper layers remove what lower ones had.
 */
export function checkBaseRuntimeLibs(base: BaseImage, cacheDir?: string): void {
  // a base that passed once passes again: remembered by its layers' digests (gunzipping a
  // 30 MB layer is most of a warm image build otherwise)
  const key = sha256Digest(base.layers.map((l) => l.descriptor.digest).join('\n')).slice(7);
  const stamp = cacheDir === undefined ? undefined : path.join(cacheDir, 'image-base-checks', key);
  if (stamp !== undefined && fs.existsSync(stamp)) return;
  checkBaseFiles(base);
  if (stamp !== undefined) {
    fs.mkdirSync(path.dirname(stamp), { recursive: true });
    fs.writeFileSync(stamp, `${base.ref}\n`);
  }
}

function checkBaseFiles(base: BaseImage): void {
  const present = new Set<string>();
  for (const layer of base.layers) {
    for (const e of listTar(layer.data)) {
      const name = path.posix.basename(e.path);
      const dir = path.posix.dirname(e.path);
      if (name === '.wh..wh..opq') {
        for (const p of present) if (p.startsWith(`${dir}/`)) present.delete(p);
      } else if (name.startsWith('.wh.')) {
        const gone = `${dir}/${name.slice(4)}`;
        for (const p of present) if (p === gone || p.startsWith(`${gone}/`)) present.delete(p);
      } else if (e.type !== 'dir') present.add(e.path);
    }
  }
  const has = (lib: string) => [...present].some((p) => /(^|\/)lib[^/]*\//.test(p) && path.posix.basename(p) === lib);
  const missing = ['libc.so.6', 'libstdc++.so.6'].filter((lib) => !has(lib));
  if (![...present].some((p) => /(^|\/)bin\/sh$/.test(p))) missing.push('/bin/sh');
  if (missing.length > 0) {
    throw new NoderelError('EBASE', `--base ${base.ref} lacks ${missing.length > 1 ? `${missing.slice(0, -1).join(', ')} and ${missing.at(-1)}` : missing[0]}: the release's Node runtime is linked against glibc and libstdc++, and its launcher is a POSIX sh script`, { hint: 'use a glibc base with libstdc++ and a shell, such as debian:bookworm-slim (distroless cc images have no shell)' });
  }
}
