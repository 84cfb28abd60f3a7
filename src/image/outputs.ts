/**
 * Where an image goes on disk: an OCI image layout directory (`--oci-layout DIR`, what skopeo,
 * umoci, podman and containerd read), and an archive for `docker load` / `podman load`
 * (`--tar FILE`): one tar that is both an OCI layout and a `docker save` archive (manifest.json
 * naming the config and layers), as Docker 25 writes them. Both written atomically.
 */
import fs from 'node:fs';
import path from 'node:path';
import fse from 'fs-extra';
import { NoderelError } from '../errors.js';
import { layerTar, type LayerEntry } from './layer-tar.js';
import { jsonBytes, type Descriptor, type ImageIndex } from './oci.js';
import type { Blob, PlatformImage } from './compose.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const LAYOUT_FILE = `${JSON.stringify({ imageLayoutVersion: '1.0.0' })}`;

/** Every blob of the images (and the index, when there is one), each once, sorted by digest. */
export function allBlobs(images: readonly PlatformImage[], index?: Blob): Blob[] {
  const byDigest = new Map<string, Blob>();
  for (const img of images) for (const b of [...img.layers, img.config, img.manifest]) byDigest.set(b.descriptor.digest, b);
  if (index) byDigest.set(index.descriptor.digest, index);
  return [...byDigest.values()].sort((a, b) => (a.descriptor.digest < b.descriptor.digest ? -1 : 1));
}

/** The descriptor index.json lists for the image: its platform only for a single manifest. */
function topDescriptor(top: Blob, tag: string): Descriptor {
  const { mediaType, digest, size } = top.descriptor;
  return { mediaType, digest, size, annotations: { [REF_NAME]: tag } };
}

/**
 * Adds the image to the OCI layout `dir` as `tag` (made when absent; an existing layout keeps
 * its other images, and the tag moves to this one).
 */
export function writeOciLayout(dir: string, tag: string, top: Blob, blobs: readonly Blob[]): void {
  const indexFile = path.join(dir, 'index.json');
  let index: ImageIndex = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
    throw new NoderelError('EIMAGEOUT', `--oci-layout ${dir} is a file, not a directory`, { hint: 'give a new directory, or an existing OCI layout' });
  }
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
    if (!fs.existsSync(path.join(dir, 'oci-layout')) || !fs.existsSync(indexFile)) {
      throw new NoderelError('EIMAGEOUT', `--oci-layout ${dir} is a directory that is not an OCI image layout (no oci-layout or index.json)`, { hint: 'give an empty or new directory, or an existing OCI layout' });
    }
    try {
      index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as ImageIndex;
    } catch {
      throw new NoderelError('EIMAGEOUT', `--oci-layout ${dir}: index.json is not valid JSON`, { hint: 'remove the directory or repair its index.json' });
    }
  }
  const blobDir = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobDir, { recursive: true });
  for (const b of blobs) {
    const file = path.join(blobDir, b.descriptor.digest.slice(7));
    if (fs.existsSync(file) && fs.statSync(file).size === b.data.length) continue;
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, b.data);
    fs.renameSync(tmp, file);
  }
  writeAtomic(path.join(dir, 'oci-layout'), LAYOUT_FILE);
  const manifests = (index.manifests ?? []).filter((d) => d.annotations?.[REF_NAME] !== tag);
  manifests.push(topDescriptor(top, tag));
  writeAtomic(indexFile, JSON.stringify({ ...index, schemaVersion: 2, manifests }));
}

function writeAtomic(file: string, text: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** `--tar FILE`: one platform's image as an archive `docker load` and `podman load` take, tagged `repoTag`. */
export async function writeDockerArchive(file: string, repoTag: string, image: PlatformImage, mtime: number): Promise<void> {
  const blobPath = (b: Blob) => `blobs/sha256/${b.descriptor.digest.slice(7)}`;
  const blobs = allBlobs([image]);
  const dockerManifest = [{ Config: blobPath(image.config), RepoTags: [repoTag], Layers: image.layers.map(blobPath) }];
  const index: ImageIndex = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [topDescriptor(image.manifest, repoTag.slice(repoTag.lastIndexOf(':') + 1))] };
  const dir = (p: string): LayerEntry => ({ type: 'dir', path: p, mode: 0o755, uid: 0, gid: 0 });
  const fileEntry = (p: string, data: Buffer): LayerEntry => ({ type: 'file', path: p, mode: 0o644, uid: 0, gid: 0, data });
  const entries: LayerEntry[] = [
    dir('blobs'),
    dir('blobs/sha256'),
    ...blobs.map((b) => fileEntry(blobPath(b), b.data)),
    fileEntry('index.json', jsonBytes(index)),
    fileEntry('manifest.json', jsonBytes(dockerManifest)),
    fileEntry('oci-layout', Buffer.from(LAYOUT_FILE)),
  ];
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await fse.outputFile(tmp, layerTar(entries, mtime));
    fs.renameSync(tmp, file);
  } catch (err) {
    await fse.remove(tmp);
    throw new NoderelError('EIMAGEOUT', `cannot write --tar ${file}: ${(err as Error).message}`, { hint: 'give a path in a writable directory' });
  }
}
