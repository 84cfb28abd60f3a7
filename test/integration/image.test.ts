/**
 * `noderel image` without a container runtime: what it writes (an OCI layout, a docker load
 * archive, a push to a real registry) read back by skopeo and GNU tar; reproducible digests; a
 * code-only change touching one layer; bases that cannot run the runtime refused; several
 * targets making an index. Running the image is test/e2e/image.test.ts.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layerTar, listTar } from '../../src/image/layer-tar.js';
import { describe as describeBlob, jsonBytes, MEDIA, sha256Digest } from '../../src/image/oci.js';
import { minimalProject, noderel, tempDir, writeFiles } from '../helpers/project.js';
import { baseImagesAvailable, debianBaseLayout, noGlibcBaseLayout, pushLayoutToRegistry } from '../helpers/oci-base.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { onPath } from '../helpers/run-command.js';

const bases = baseImagesAvailable();
if (!bases.ok) console.log(`skipping noderel image tests: ${bases.why}`);

const skopeo = (args: string[]) => execFileSync('skopeo', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
const inspect = (ref: string, ...flags: string[]) => JSON.parse(skopeo(['inspect', ...flags, ref])) as Record<string, any>;
const blob = (layout: string, digest: string) => fs.readFileSync(path.join(layout, 'blobs', 'sha256', digest.replace('sha256:', '')));
const json = (layout: string, digest: string) => JSON.parse(blob(layout, digest).toString('utf8')) as Record<string, any>;
const topOf = (layout: string, tag: string) => (JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')).manifests as any[]).find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);

/** An OCI layout (tag `multi`) of one image per arch whose one layer holds empty `files` (TRIPLET: the arch's). */
function syntheticBase(dir: string, archs: readonly ('amd64' | 'arm64')[], files: readonly string[]): string {
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (data: Buffer) => fs.writeFileSync(path.join(dir, 'blobs', 'sha256', sha256Digest(data).slice(7)), data);
  const manifests = archs.map((arch) => {
    const triplet = arch === 'amd64' ? 'x86_64-linux-gnu' : 'aarch64-linux-gnu';
    const tar = layerTar(files.map((f) => ({ type: 'file' as const, path: f.replace('TRIPLET', triplet), mode: 0o644, uid: 0, gid: 0, data: Buffer.alloc(0) })), 0);
    const gz = gzipSync(tar);
    put(gz);
    const config = jsonBytes({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256Digest(tar)] } });
    put(config);
    const manifest = jsonBytes({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: describeBlob(MEDIA.ociConfig, config), layers: [describeBlob(MEDIA.ociLayerGzip, gz)] });
    put(manifest);
    return describeBlob(MEDIA.ociManifest, manifest, { platform: { os: 'linux', architecture: arch } });
  });
  const index = jsonBytes({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests });
  put(index);
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...describeBlob(MEDIA.ociIndex, index), annotations: { 'org.opencontainers.image.ref.name': 'multi' } }] }));
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  return dir;
}


/** An arm64 glibc + libstdc++ root (mmdebstrap, extract only: no arm64 code runs), cached; undefined without the tools. */
function arm64Sysroot(): string | undefined {
  if (!onPath('qemu-aarch64-static') || !onPath('mmdebstrap')) return undefined;
  const dir = path.join(process.env.NODEREL_CACHE_DIR ?? path.join(os.tmpdir(), 'noderel-test-cache'), 'images', 'arm64-sysroot');
  if (fs.existsSync(path.join(dir, 'usr'))) return dir;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const work = fs.mkdtempSync(path.join(path.dirname(dir), '.arm64-sysroot-'));
  try {
    const tarball = path.join(work, 'rootfs.tar');
    execFileSync('mmdebstrap', ['--quiet', '--arch=arm64', '--variant=extract', '--include=libc6,libstdc++6,libgcc-s1', '--skip=output/dev', 'bookworm', tarball], { stdio: 'pipe', timeout: 300_000 });
    fs.mkdirSync(path.join(work, 'root'));
    execFileSync('tar', ['-xf', tarball, '-C', path.join(work, 'root')]);
    try {
      fs.renameSync(path.join(work, 'root'), dir);
    } catch {
      // another test process made it first: theirs is as good
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return dir;
}

describe.skipIf(!bases.ok)('noderel image', { timeout: 600_000 }, () => {
  let base: string;
  let project: { dir: string; cleanup: () => void };
  const out = tempDir('noderel-image-out-');
  const env = { SOURCE_DATE_EPOCH: '1700000000' };

  beforeAll(async () => {
    base = await debianBaseLayout();
    project = minimalProject();
  }, 600_000);
  afterAll(() => {
    project?.cleanup();
    out.cleanup();
  });

  it('writes an OCI layout skopeo reads: the base layers, then runtime, dependencies, code and config, run as 65532 by bin/<name> foreground', () => {
    const layout = path.join(out.dir, 'layout');
    const r = noderel(project.dir, ['image', '--base', `oci-layout:${base}:base`, '--oci-layout', layout], env);
    expect(r.code, r.stderr).toBe(0);
    const digest = r.stdout.trim();
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.stderr).toContain('imaging mini-1.0.0 for linux/amd64');
    const info = inspect(`oci:${layout}:1.0.0`);
    expect(info.Digest).toBe(digest);
    const baseInfo = inspect(`oci:${base}:base`);
    expect(info.Layers.slice(0, baseInfo.Layers.length)).toEqual(baseInfo.Layers);
    expect(info.Layers).toHaveLength(baseInfo.Layers.length + 4);
    const config = inspect(`oci:${layout}:1.0.0`, '--config');
    expect(config.config).toMatchObject({ User: '65532:65532', Entrypoint: ['/opt/mini/bin/mini', 'foreground'], WorkingDir: '/opt/mini', StopSignal: 'SIGTERM' });
    expect(config.config.Env).toEqual(expect.arrayContaining(['REL=web', 'RELEASE_TMP=/var/lib/mini/tmp', 'RUNNER_LOG_DIR=/var/log/mini']));
    expect(config.config.Env.find((e: string) => e.startsWith('PATH='))).toMatch(/:\/opt\/mini\/bin$/);
    expect(config.created).toBe('2023-11-14T22:13:20Z');
    const manifest = json(layout, digest);
    expect(manifest.annotations).toMatchObject({ 'org.opencontainers.image.version': '1.0.0', 'org.opencontainers.image.title': 'mini', 'org.opencontainers.image.created': '2023-11-14T22:13:20Z' });
    // each layer of ours, unpacked by GNU tar: what it holds and who owns it
    const ours = manifest.layers.slice(-4).map((l: { digest: string }) => {
      const file = path.join(out.dir, `${l.digest.slice(7)}.tar.gz`);
      fs.writeFileSync(file, blob(layout, l.digest));
      return execFileSync('tar', ['--numeric-owner', '-tvzf', file], { encoding: 'utf8' });
    });
    expect(ours[0]).toMatch(/ 0\/0 .* opt\/mini\/node-[\d.]+\/bin\/node\n/);
    expect(ours[1]).toMatch(/opt\/mini\/lib\/greeter-0\.3\.0\/node_modules\/shout\/index\.js\n/);
    expect(ours[1]).not.toMatch(/devonly|noderel-|bin\//);
    expect(ours[2]).toMatch(/^-rwxr-xr-x 0\/0 .* opt\/mini\/bin\/mini$/m);
    expect(ours[2]).not.toMatch(/node_modules/);
    expect(ours[3]).toMatch(/opt\/mini\/releases\/1\.0\.0\/release\.json\n/);
    expect(ours[3]).toMatch(/^drwxr-x--- 65532\/65532 .* var\/lib\/mini\/tmp\/$/m);
    expect(ours[3]).toMatch(/^drwxr-x--- 65532\/65532 .* var\/log\/mini\/$/m);
    expect(ours.join('')).not.toMatch(/COOKIE/);
  });

  it('gives the same digest for the same inputs (another checkout, another output), and SOURCE_DATE_EPOCH sets the time', () => {
    const again = tempDir('noderel-image-again-');
    try {
      fs.cpSync(project.dir, again.dir, { recursive: true });
      fs.rmSync(path.join(again.dir, '_rel'), { recursive: true, force: true });
      const a = noderel(project.dir, ['image', '-q', '--base', `oci-layout:${base}:base`, '--oci-layout', path.join(out.dir, 'a')], env);
      const b = noderel(again.dir, ['image', '-q', '--base', `oci-layout:${base}:base`, '--oci-layout', path.join(out.dir, 'b')], env);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      expect(b.stdout).toBe(a.stdout);
      const c = noderel(project.dir, ['image', '-q', '--base', `oci-layout:${base}:base`, '--oci-layout', path.join(out.dir, 'c')], { SOURCE_DATE_EPOCH: '1700000001' });
      expect(c.code, c.stderr).toBe(0);
      expect(c.stdout).not.toBe(a.stdout);
    } finally {
      again.cleanup();
    }
  });

  it('a code-only change makes a new code layer and nothing else new', () => {
    const layersOf = (dir: string) => {
      const r = noderel(project.dir, ['image', '-q', '--base', `oci-layout:${base}:base`, '--oci-layout', dir], env);
      expect(r.code, r.stderr).toBe(0);
      return json(dir, r.stdout.trim()).layers.map((l: { digest: string }) => l.digest) as string[];
    };
    const before = layersOf(path.join(out.dir, 'before'));
    const app = path.join(project.dir, 'apps/greeter/src/app.js');
    const original = fs.readFileSync(app, 'utf8');
    try {
      fs.writeFileSync(app, `${original}\n// a code change\n`);
      const after = layersOf(path.join(out.dir, 'after'));
      const changed = after.map((d, i) => (d === before[i] ? '' : String(i - (after.length - 4)))).filter((x) => x !== '');
      expect(changed).toEqual(['2']); // runtime 0, dependencies 1, code 2, config 3
    } finally {
      fs.writeFileSync(app, original);
    }
  });

  it('--tar writes one archive that skopeo reads as a docker archive and as an OCI layout, with the same image', () => {
    const file = path.join(out.dir, 'mini.tar');
    const r = noderel(project.dir, ['image', '-q', '--base', `oci-layout:${base}:base`, '--tar', file], env);
    expect(r.code, r.stderr).toBe(0);
    expect(inspect(`docker-archive:${file}`).Digest).toMatch(/^sha256:/);
    const unpacked = path.join(out.dir, 'mini-tar');
    fs.mkdirSync(unpacked);
    execFileSync('tar', ['-xf', file, '-C', unpacked]);
    const dockerManifest = JSON.parse(fs.readFileSync(path.join(unpacked, 'manifest.json'), 'utf8'));
    expect(dockerManifest).toHaveLength(1);
    expect(dockerManifest[0].RepoTags).toEqual(['mini:1.0.0']);
    for (const p of [dockerManifest[0].Config, ...dockerManifest[0].Layers]) expect(fs.existsSync(path.join(unpacked, p)), p).toBe(true);
    expect(inspect(`oci:${unpacked}:1.0.0`).Digest).toBe(r.stdout.trim());
    const copied = path.join(out.dir, 'copied');
    skopeo(['copy', '--quiet', `docker-archive:${file}`, `oci:${copied}:x`]);
    expect(inspect(`oci:${copied}:x`, '--config').config.User).toBe('65532:65532');
  });

  it('takes a docker save archive as the base, the layout of older Docker too (<id>/layer.tar links to the layer)', () => {
    const archive = path.join(out.dir, 'base-docker.tar');
    skopeo(['copy', '--quiet', `oci:${base}:base`, `docker-archive:${archive}:debian:bookworm`]);
    // rewrite it as Docker before 25 saved: each layer's manifest entry is <id>/layer.tar, a link
    const dir = path.join(out.dir, 'base-docker');
    fs.mkdirSync(dir);
    execFileSync('tar', ['-xf', archive, '-C', dir]);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    manifest[0].Layers = manifest[0].Layers.map((layer: string, i: number) => {
      const id = `layer${i}`;
      fs.rmSync(path.join(dir, id), { recursive: true, force: true });
      fs.mkdirSync(path.join(dir, id));
      fs.symlinkSync(`../${layer}`, path.join(dir, id, 'layer.tar'));
      return `${id}/layer.tar`;
    });
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    const old = path.join(out.dir, 'base-docker-old.tar');
    execFileSync('tar', ['-cf', old, '-C', dir, '.']);
    const layout = path.join(out.dir, 'from-docker-archive');
    const r = noderel(project.dir, ['image', '-q', '--base', `docker-archive:${old}`, '--oci-layout', layout], env);
    expect(r.code, r.stderr).toBe(0);
    const config = inspect(`oci:${layout}:1.0.0`, '--config');
    const baseConfig = inspect(`oci:${base}:base`, '--config');
    expect(config.rootfs.diff_ids.slice(0, -4)).toEqual(baseConfig.rootfs.diff_ids);
    expect(inspect(`oci:${layout}:1.0.0`).Digest).toBe(r.stdout.trim());
  });

  it('refuses a base without glibc, and a command with nowhere to put the image, in one line each', async () => {
    const noGlibc = await noGlibcBaseLayout();
    const r = noderel(project.dir, ['image', '--base', `oci-layout:${noGlibc}:base`, '--oci-layout', path.join(out.dir, 'never')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').pop()).toMatch(/^noderel: --base oci-layout:.* lacks libc\.so\.6 and libstdc\+\+\.so\.6: .*; use a glibc base with libstdc\+\+ and a shell, such as debian:bookworm-slim/);
    const noShell = syntheticBase(path.join(out.dir, 'noshell'), ['amd64'], ['usr/lib/x86_64-linux-gnu/libc.so.6', 'usr/lib/x86_64-linux-gnu/libstdc++.so.6']);
    const r2 = noderel(project.dir, ['image', '--base', `oci-layout:${noShell}:multi`, '--oci-layout', path.join(out.dir, 'never')]);
    expect(r2.code).toBe(1);
    expect(r2.stderr.trim().split('\n').pop()).toMatch(/lacks \/bin\/sh: .* its launcher is a POSIX sh script/);
    expect(fs.existsSync(path.join(out.dir, 'never'))).toBe(false);
    const none = noderel(project.dir, ['image', '--base', `oci-layout:${base}:base`]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^noderel: noderel image needs somewhere to put the image; give --push REF, --oci-layout DIR or --tar FILE\n$/);
    const noBase = noderel(project.dir, ['image', '--oci-layout', path.join(out.dir, 'never')]);
    expect(noBase.code).toBe(1);
    expect(noBase.stderr).toMatch(/needs a base image \(--base\)/);
    // bad references and paths are refused before anything is built
    for (const [args, re] of [
      [['--push', 'Team/Mini'], /^noderel: image reference "Team\/Mini": the repository "Team\/Mini" is not valid/],
      [['--tar', out.dir], /^noderel: --tar .* is a directory; give the archive file to write/],
      [['--oci-layout', path.join(project.dir, 'rel/relx.config')], /^noderel: --oci-layout .*relx\.config is a file, not a directory/],
      [['--oci-layout', path.join(out.dir, 'never'), '--target', 'linux-x64,linux-x64'], /^noderel: --target names linux-x64 twice; name each target once/],
    ] as const) {
      const bad = noderel(project.dir, ['image', '-q', '--base', `oci-layout:${base}:base`, ...args]);
      expect(bad.code, bad.stderr).toBe(1);
      expect(bad.stderr).toMatch(re);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    }
    const badTag = noderel(project.dir, ['image', '--base', `oci-layout:${base}:nosuchtag`, '--oci-layout', path.join(out.dir, 'never')]);
    expect(badTag.code).toBe(1);
    expect(badTag.stderr).toMatch(/no image tagged nosuchtag in .* \(tags: base\); name one: --base oci-layout:DIR:TAG/);
  });

  describe('with a registry', () => {
    let registry: TestRegistry;
    beforeAll(async () => {
      registry = await startRegistry();
      await pushLayoutToRegistry(base, 'base', registry.host, 'library/debian:bookworm');
    }, 300_000);
    afterAll(async () => registry?.stop());

    const uploadedOf = (stderr: string) => Number(/: (\d+) bytes of blobs uploaded/.exec(stderr)?.[1] ?? NaN);

    it('pulls the base from it and pushes the image: skopeo reads it back; the base layers are mounted, not uploaded; a code change uploads that layer and the manifests only', () => {
      const ref = `${registry.host}/team/mini:1.0.0`;
      const r = noderel(project.dir, ['image', '--base', `${registry.host}/library/debian:bookworm`, '--push', ref], env);
      expect(r.code, r.stderr).toBe(0);
      const info = inspect(`docker://${ref}`, '--tls-verify=false');
      expect(info.Digest).toBe(r.stdout.trim());
      const raw = JSON.parse(skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]));
      const ours = raw.layers.slice(-4).reduce((n: number, l: { size: number }) => n + l.size, 0);
      const baseBytes = raw.layers.slice(0, -4).reduce((n: number, l: { size: number }) => n + l.size, 0);
      const first = uploadedOf(r.stderr);
      // ours and the config, every byte; the base's layers mounted from library/debian, none
      expect(first).toBe(ours + raw.config.size);
      expect(baseBytes).toBeGreaterThan(0);

      const again = noderel(project.dir, ['image', '--base', `${registry.host}/library/debian:bookworm`, '--push', ref], env);
      expect(again.code, again.stderr).toBe(0);
      expect(uploadedOf(again.stderr)).toBe(0);

      const app = path.join(project.dir, 'apps/greeter/src/app.js');
      const original = fs.readFileSync(app, 'utf8');
      try {
        fs.writeFileSync(app, `${original}\n// pushed change\n`);
        const changed = noderel(project.dir, ['image', '--base', `${registry.host}/library/debian:bookworm`, '--push', `${registry.host}/team/mini:1.0.1`], env);
        expect(changed.code, changed.stderr).toBe(0);
        const raw2 = JSON.parse(skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/team/mini:1.0.1`]));
        expect(uploadedOf(changed.stderr)).toBe(raw2.layers.at(-2).size + raw2.config.size);
      } finally {
        fs.writeFileSync(app, original);
      }
    });

    it('names the registry and the reference when the base is not there', () => {
      const r = noderel(project.dir, ['image', '--base', `${registry.host}/library/nosuch:1`, '--oci-layout', path.join(out.dir, 'never2')]);
      expect(r.code).toBe(1);
      const last = r.stderr.trim().split('\n').pop()!;
      expect(last).toMatch(/^noderel: /);
      expect(last).toContain(registry.host);
      expect(last).toMatch(/nosuch/);
      expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    });
  });

  describe('several targets', () => {
    it('builds one image per target with its own runtime, under one index; the arm64 runtime is an aarch64 ELF; --tar refuses several', () => {
      // a base index for both platforms: the base check reads only the names
      const multiBase = syntheticBase(path.join(out.dir, 'multibase'), ['amd64', 'arm64'], ['usr/lib/TRIPLET/libc.so.6', 'usr/lib/TRIPLET/libstdc++.so.6', 'usr/bin/sh']);

      const pinned = tempDir('noderel-image-multi-');
      try {
        fs.cpSync(project.dir, pinned.dir, { recursive: true });
        const cfg = path.join(pinned.dir, 'rel/relx.config');
        writeFiles(pinned.dir, { 'rel/relx.config': fs.readFileSync(cfg, 'utf8').replace('runtime: system', 'runtime: 22.23.3') });
        const layout = path.join(out.dir, 'multi');
        const r = noderel(pinned.dir, ['image', '--base', `oci-layout:${multiBase}:multi`, '--target', 'linux-x64,linux-arm64', '--oci-layout', layout], env);
        expect(r.code, r.stderr).toBe(0);
        const top = json(layout, r.stdout.trim());
        expect(top.mediaType).toBe(MEDIA.ociIndex);
        expect(top.manifests.map((m: any) => `${m.platform.os}/${m.platform.architecture}`)).toEqual(['linux/amd64', 'linux/arm64']);
        const machines = top.manifests.map((m: any) => {
          const runtimeLayer = json(layout, m.digest).layers.at(-4).digest as string;
          const tar = gunzipSync(blob(layout, runtimeLayer));
          const node = listTar(tar).find((e) => /node-22\.23\.3\/bin\/node$/.test(e.path));
          expect(node, 'the runtime layer has bin/node').toBeDefined();
          // the ELF header of bin/node: e_machine at offset 18 of the file data (after its tar header block)
          const at = tar.indexOf(Buffer.from('\x7fELF', 'latin1'));
          return tar.readUInt16LE(at + 18);
        });
        expect(machines).toEqual([62, 183]); // EM_X86_64, EM_AARCH64
        // and the arm64 runtime from the image runs, under qemu-user with an arm64 glibc/libstdc++
        const sysroot = arm64Sysroot();
        if (sysroot === undefined) console.log('not running the arm64 runtime: qemu-aarch64-static or mmdebstrap is missing (apt-get install qemu-user-static mmdebstrap)');
        else {
          const arm = top.manifests[1];
          const unpacked = path.join(out.dir, 'arm64-runtime');
          fs.mkdirSync(unpacked);
          const layerFile = path.join(out.dir, 'arm64-runtime.tar.gz');
          fs.writeFileSync(layerFile, blob(layout, json(layout, arm.digest).layers.at(-4).digest));
          execFileSync('tar', ['-xzf', layerFile, '-C', unpacked]);
          const ran = execFileSync('qemu-aarch64-static', ['-L', sysroot, path.join(unpacked, 'opt/mini/node-22.23.3/bin/node'), '-p', 'process.arch + " " + process.version'], { encoding: 'utf8', timeout: 120_000 });
          expect(ran.trim()).toBe('arm64 v22.23.3');
        }
        expect(inspect(`oci:${layout}:1.0.0`, '--raw').mediaType).toBe(MEDIA.ociIndex);
        const tarOut = noderel(pinned.dir, ['image', '--base', `oci-layout:${multiBase}:multi`, '--target', 'linux-x64,linux-arm64', '--tar', path.join(out.dir, 'multi.tar')]);
        expect(tarOut.code).toBe(1);
        expect(tarOut.stderr).toMatch(/--tar writes one platform/);
      } finally {
        pinned.cleanup();
      }
    });
  });

  it('a top-level entry of the layout is named by the tag it was given (DIR:TAG)', () => {
    const layout = path.join(out.dir, 'tagged');
    const r = noderel(project.dir, ['image', '-q', '--base', `oci-layout:${base}:base`, '--oci-layout', `${layout}:edge`], env);
    expect(r.code, r.stderr).toBe(0);
    expect(topOf(layout, 'edge').digest).toBe(r.stdout.trim());
  });
});
