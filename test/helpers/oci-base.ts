// Base images for the `noderel image` end-to-end tests, made without a Docker daemon: a minimal
// Debian bookworm rootfs from mmdebstrap, turned into an OCI image layout here (one gzipped
// layer, an image config, a manifest, index.json with the tag as org.opencontainers.image.ref.name).
// Built once per machine and cached, also when several test files (separate processes) ask at
// the same time: a lock file says who builds, the build happens in a temp dir that is renamed
// into place, and whoever loses a rename race uses the winner's.
//
//   const base = await debianBaseLayout();         // `${base}` holds tag `base`: oci:${base}:base
//   const noLibc = await noGlibcBaseLayout();
//   await pushLayoutToRegistry(base, 'base', '127.0.0.1:5000', 'debian:bookworm');
//   if (canRunArm64()) ...                         // qemu-aarch64 via binfmt_misc
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onPath, runToCompletion } from './run-command.js';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import {
  MEDIA,
  describe as describeBlob,
  jsonBytes,
  platformOfTarget,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from '../../src/image/oci.js';

/** The tag every base layout made here carries. */
export const BASE_TAG = 'base';

/** The mmdebstrap command line of the Debian base (the output tarball is appended). */
export const DEBIAN_MMDEBSTRAP_ARGS: readonly string[] = [
  '--variant=essential',
  '--include=libstdc++6',
  "--dpkgopt=path-exclude=/usr/share/man/*",
  "--dpkgopt=path-exclude=/usr/share/doc/*",
  "--dpkgopt=path-exclude=/usr/share/locale/*",
  // No device nodes in the layer (as in registry base images); the runtime mounts its own /dev.
  '--skip=output/dev',
  'bookworm',
];

/** The mmdebstrap command line of the glibc-less base: busybox-static unpacked, nothing else (no dpkg, no libc). */
export const NO_GLIBC_MMDEBSTRAP_ARGS: readonly string[] = ['--variant=extract', '--include=busybox-static', '--skip=output/dev', 'bookworm'];

const BUILD_TIMEOUT_MS = 15 * 60_000;
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Where the images are cached: `$NODEREL_CACHE_DIR/images` (default `<tmp>/noderel-test-cache/images`). */
export function imageCacheDir(): string {
  return path.join(process.env.NODEREL_CACHE_DIR ?? path.join(os.tmpdir(), 'noderel-test-cache'), 'images');
}

/**
 * Can the base images be had here: already cached, or buildable (root and mmdebstrap on PATH)?
 * For `describe.skipIf`; the reason says what is missing.
 */
export function baseImagesAvailable(): { ok: true } | { ok: false; why: string } {
  const cached = ['debian-bookworm-base', 'no-glibc-base'].every((n) => fs.existsSync(path.join(imageCacheDir(), n, 'index.json')));
  if (cached) return { ok: true };
  if (process.getuid?.() !== 0) return { ok: false, why: 'the base images are not cached and building them (mmdebstrap) needs root' };
  if (!onPath('mmdebstrap')) return { ok: false, why: 'the base images are not cached and mmdebstrap is not on PATH (apt-get install mmdebstrap)' };
  return { ok: true };
}

/**
 * An OCI image layout directory (tag `base`) of a minimal Debian bookworm for the host's
 * architecture: /bin/sh, coreutils, glibc, libstdc++ (usrmerged: /lib -> usr/lib), no man
 * pages, docs or locales. About 30 s and 100 MB the first time; cached after that.
 */
export function debianBaseLayout(): Promise<string> {
  return cachedLayout('debian-bookworm-base', async (work) => {
    const tarball = path.join(work, 'rootfs.tar');
    await run('mmdebstrap', [...DEBIAN_MMDEBSTRAP_ARGS, tarball]);
    return { tarball, createdBy: `mmdebstrap ${DEBIAN_MMDEBSTRAP_ARGS.join(' ')}`, cmd: ['/bin/bash'] };
  });
}

/**
 * An OCI image layout directory (tag `base`) without glibc: a statically linked busybox as
 * /bin/busybox and /bin/sh, no libc.so.6 and no dynamic loader anywhere. For "the base lacks glibc".
 */
export function noGlibcBaseLayout(): Promise<string> {
  return cachedLayout('no-glibc-base', async (work) => {
    const tarball = path.join(work, 'rootfs.tar');
    await run('mmdebstrap', [...NO_GLIBC_MMDEBSTRAP_ARGS, tarball]);
    // The extract variant runs no hooks: the /bin/sh link is appended to the tarball here.
    const extra = path.join(work, 'extra');
    fs.mkdirSync(path.join(extra, 'bin'), { recursive: true });
    fs.symlinkSync('busybox', path.join(extra, 'bin', 'sh'));
    await run('tar', ['--append', '--numeric-owner', '--owner=0', '--group=0', '-f', tarball, '-C', extra, './bin/sh']);
    return { tarball, createdBy: `mmdebstrap ${NO_GLIBC_MMDEBSTRAP_ARGS.join(' ')}; ln -s busybox /bin/sh`, cmd: ['/bin/sh'] };
  });
}

/** `skopeo copy --dest-tls-verify=false oci:<layoutDir>:<tag> docker://<registryHost>/<repo>` (`repo` may end in `:tag`; none is `latest`). */
export async function pushLayoutToRegistry(layoutDir: string, tag: string, registryHost: string, repo: string): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layoutDir}:${tag}`, `docker://${registryHost}/${repo}`]);
}

/**
 * Copies an image that skopeo can read (`docker-archive:<file>` as `noderel image --tar` writes,
 * `docker://<host>/<repo>:<tag>` from a plain-http registry, `oci:<dir>:<tag>`) into the OCI
 * layout `layoutDir` under `tag`, for runImage. Returns `layoutDir`.
 */
export async function copyToLayout(source: string, layoutDir: string, tag: string): Promise<string> {
  const tls = source.startsWith('docker://') ? ['--src-tls-verify=false'] : [];
  await run('skopeo', ['copy', '--quiet', ...tls, source, `oci:${layoutDir}:${tag}`]);
  return layoutDir;
}

let arm64: boolean | undefined;

/**
 * Can this machine run linux/arm64 binaries (qemu-aarch64 registered with binfmt_misc and
 * enabled)? As root, first mounts binfmt_misc and enables qemu-aarch64 (binfmt-support,
 * qemu-user-static) if they are not already. Answered once per process.
 */
export function canRunArm64(): boolean {
  if (arm64 !== undefined) return arm64;
  const dir = '/proc/sys/fs/binfmt_misc';
  const enabled = (): boolean => {
    try {
      return fs.readFileSync(path.join(dir, 'qemu-aarch64'), 'utf8').split('\n')[0] === 'enabled';
    } catch {
      return false;
    }
  };
  if (!enabled() && process.getuid?.() === 0) {
    const quiet = { stdio: 'ignore', timeout: 30_000 } as const;
    if (!fs.existsSync(path.join(dir, 'register'))) {
      try {
        execFileSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir], quiet);
      } catch {
        // not allowed here (no privilege, no such filesystem): then there is no arm64
      }
    }
    try {
      execFileSync('update-binfmts', ['--enable', 'qemu-aarch64'], quiet);
    } catch {
      // no binfmt-support, or qemu-user-static not installed
    }
  }
  arm64 = enabled();
  return arm64;
}

// ---------------------------------------------------------------------------------------------
// The cache

interface Rootfs {
  /** The rootfs as an uncompressed tarball, entries relative (`./bin/...`). */
  tarball: string;
  createdBy: string;
  cmd: string[];
}

const inFlight = new Map<string, Promise<string>>();

function cachedLayout(name: string, makeRootfs: (work: string) => Promise<Rootfs>): Promise<string> {
  let p = inFlight.get(name);
  if (!p) {
    p = buildOnce(name, makeRootfs);
    inFlight.set(name, p);
    p.catch(() => inFlight.delete(name));
  }
  return p;
}

const isLayout = (dir: string): boolean => fs.existsSync(path.join(dir, 'index.json'));

async function buildOnce(name: string, makeRootfs: (work: string) => Promise<Rootfs>): Promise<string> {
  const cache = imageCacheDir();
  const final = path.join(cache, name);
  if (isLayout(final)) return final;
  fs.mkdirSync(cache, { recursive: true });
  const lock = path.join(cache, `${name}.lock`);
  const deadline = Date.now() + BUILD_TIMEOUT_MS;
  for (;;) {
    if (isLayout(final)) return final;
    if (takeLock(lock)) {
      try {
        if (isLayout(final)) return final;
        return await build(cache, name, final, makeRootfs);
      } finally {
        fs.rmSync(lock, { force: true });
      }
    }
    // Someone else builds it: wait for the layout, or for the lock to go (their build failed or they died).
    if (Date.now() > deadline) throw new Error(`${final}: still not built after ${BUILD_TIMEOUT_MS / 1000} s (lock ${lock} held by another process)`);
    clearIfStale(lock);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Creates the lock file with our pid in it; false when it exists. */
function takeLock(lock: string): boolean {
  try {
    fs.writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/**
 * Removes a lock whose holder is dead. Two waiters may both do so and then both build: the
 * rename into place keeps that correct (the loser uses the winner's), it only costs a build.
 */
function clearIfStale(lock: string): void {
  let text: string;
  try {
    text = fs.readFileSync(lock, 'utf8');
  } catch {
    return; // gone already
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) {
    // Being written right now, or garbage: only garbage that has been there a while is stale.
    try {
      if (Date.now() - fs.statSync(lock).mtimeMs > 10_000) fs.rmSync(lock, { force: true });
    } catch {
      // gone
    }
    return;
  }
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') fs.rmSync(lock, { force: true });
  }
}

async function build(cache: string, name: string, final: string, makeRootfs: (work: string) => Promise<Rootfs>): Promise<string> {
  const work = fs.mkdtempSync(path.join(cache, `.${name}.build-`));
  // For the test that several processes asking at once build once: each build is logged there.
  if (process.env.NODEREL_TEST_IMAGE_BUILD_LOG) fs.appendFileSync(process.env.NODEREL_TEST_IMAGE_BUILD_LOG, `${name} ${process.pid}\n`);
  try {
    const rootfs = await makeRootfs(work);
    const layout = path.join(work, 'layout');
    await writeLayout(layout, rootfs, BASE_TAG);
    fs.rmSync(rootfs.tarball, { force: true });
    try {
      fs.renameSync(layout, final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another process renamed its build into place first: use theirs.
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && isLayout(final)) return final;
      throw err;
    }
    return final;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// A rootfs tarball as an OCI image layout

/** Passes bytes through while hashing them. */
function hashing(hash: ReturnType<typeof createHash>, count: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      count.bytes += chunk.length;
      done(null, chunk);
    },
  });
}

/** Writes `layoutDir` (which must not exist) as an OCI image layout holding the rootfs as one gzipped layer, under `tag`. */
export async function writeLayout(layoutDir: string, rootfs: Rootfs, tag: string): Promise<void> {
  const blobs = path.join(layoutDir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const writeBlob = (data: Buffer): void => fs.writeFileSync(path.join(blobs, createHash('sha256').update(data).digest('hex')), data);

  // The layer: gzip the tarball, hashing the tar (diff_id) and the gzip (digest) on the way.
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  const blobSize = { bytes: 0 };
  const tmpBlob = path.join(blobs, `.layer-${randomBytes(4).toString('hex')}`);
  await pipeline(
    fs.createReadStream(rootfs.tarball),
    hashing(diffHash, { bytes: 0 }),
    zlib.createGzip({ level: 6 }),
    hashing(blobHash, blobSize),
    fs.createWriteStream(tmpBlob),
  );
  const diffId = `sha256:${diffHash.digest('hex')}`;
  const layerHex = blobHash.digest('hex');
  fs.renameSync(tmpBlob, path.join(blobs, layerHex));

  const platform = platformOfTarget(`linux-${process.arch}`);
  const created = new Date().toISOString();
  const config: ImageConfig = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: [DEFAULT_PATH], Cmd: rootfs.cmd },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created, created_by: rootfs.createdBy, comment: 'noderel test base image' }],
  };
  const configBytes = jsonBytes(config);
  writeBlob(configBytes);

  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: describeBlob(MEDIA.ociConfig, configBytes),
    layers: [{ mediaType: MEDIA.ociLayerGzip, digest: `sha256:${layerHex}`, size: blobSize.bytes }],
  };
  const manifestBytes = jsonBytes(manifest);
  writeBlob(manifestBytes);

  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [describeBlob(MEDIA.ociManifest, manifestBytes, { platform, annotations: { 'org.opencontainers.image.ref.name': tag } })],
  };
  fs.writeFileSync(path.join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(layoutDir, 'index.json'), jsonBytes(index));
}

// ---------------------------------------------------------------------------------------------


/** Runs a command to completion (run-command.ts), with this module's time limit. */
function run(cmd: string, args: string[], timeoutMs = BUILD_TIMEOUT_MS): Promise<string> {
  return runToCompletion(cmd, args, timeoutMs);
}
