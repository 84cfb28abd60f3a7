/**
 * The OCI image format, as far as noderel writes and reads it (the OCI image spec v1.1:
 * descriptors, image config, image manifest, image index, the image layout), plus the Docker
 * schema 2 media types a registry or `docker save` may hand us for a base image. Pure data and
 * digests; no I/O.
 */
import { createHash } from 'node:crypto';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Media types of a single-platform manifest, and of an index (manifest list). */
export const MANIFEST_TYPES: readonly string[] = [MEDIA.ociManifest, MEDIA.dockerManifest];
export const INDEX_TYPES: readonly string[] = [MEDIA.ociIndex, MEDIA.dockerManifestList];

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface ImageConfig {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[] | null;
    WorkingDir?: string;
    ExposedPorts?: Record<string, Record<string, never>>;
    Labels?: Record<string, string>;
    StopSignal?: string;
    Volumes?: Record<string, Record<string, never>>;
  };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** `sha256:<hex>` of the bytes. */
export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A JSON document as the bytes we write and hash (stable: no whitespace, keys as built). */
export function jsonBytes(doc: unknown): Buffer {
  return Buffer.from(JSON.stringify(doc));
}

/** The descriptor of a blob. */
export function describe(mediaType: string, data: Buffer, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: sha256Digest(data), size: data.length, ...extra };
}

/** npm's target names (`linux-x64`) as OCI platforms (`linux/amd64`). */
export function platformOfTarget(target: string): Platform {
  const [os, arch] = target.split('-') as [string, string];
  switch (arch) {
    case 'x64':
      return { os, architecture: 'amd64' };
    case 'arm64':
      return { os, architecture: 'arm64', variant: 'v8' };
    case 'armv7l':
      return { os, architecture: 'arm', variant: 'v7' };
    case 'ppc64le':
    case 's390x':
      return { os, architecture: arch };
    default:
      return { os, architecture: arch };
  }
}

/**
 * Does a platform from an index or config match the one we build for? The variant counts only
 * when both say one (arm64 images often say none, or `v8`).
 */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (have === undefined || have.os !== want.os || have.architecture !== want.architecture) return false;
  return have.variant === undefined || want.variant === undefined || have.variant === want.variant;
}

/** A digest as written in descriptors: `sha256:` and 64 lowercase hex digits. */
export function isDigest(s: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(s);
}
