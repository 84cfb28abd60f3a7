/**
 * `--push REF`: every blob the registry lacks (a base layer from the same registry is mounted
 * from the base's repository instead of uploaded), each image's manifest by digest, and the
 * tag on the top manifest (or the index over several platforms). Reports the bytes sent.
 */
import type { Reporter } from '../reporter.js';
import { formatImageRef, parseImageRef } from './reference.js';
import { RegistryClient } from './registry.js';
import type { Blob, PlatformImage } from './compose.js';

export async function pushImage(ref: string, images: readonly PlatformImage[], index: Blob | undefined, opts: { reporter: Reporter }): Promise<{ uploaded: number; digest: string }> {
  const target = parseImageRef(ref);
  const client = new RegistryClient(target.registry, target.repository);
  for (const img of images) {
    const base = img.base.registry;
    const mountFrom = base !== undefined && base.host === target.registry && base.repository !== target.repository ? base.repository : undefined;
    const baseDigests = new Set(img.base.layers.map((l) => l.descriptor.digest));
    for (const blob of [...img.layers, img.config]) {
      const fromBase = baseDigests.has(blob.descriptor.digest);
      await client.pushBlob(blob.descriptor.digest, blob.data, fromBase && mountFrom !== undefined ? { mountFrom } : {});
    }
    if (index !== undefined) await client.putManifest(img.manifest.descriptor.digest, img.manifest.descriptor.mediaType, img.manifest.data);
  }
  const top = index ?? images[0]!.manifest;
  const tag = target.digest ?? target.tag ?? 'latest';
  const digest = await client.putManifest(tag, top.descriptor.mediaType, top.data);
  opts.reporter.step(`pushed ${formatImageRef({ ...target, tag: target.digest ? undefined : tag, digest: undefined })}@${digest}: ${client.bytesUploaded} bytes of blobs uploaded (${formatBytes(client.bytesUploaded)})`);
  return { uploaded: client.bytesUploaded, digest };
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}
