/**
 * The container harness of the `noderel image` tests, proved on the base images themselves (no
 * noderel involved): the base layouts are valid OCI image layouts (skopeo reads them), the
 * glibc-less one has no libc, the cache builds once for several processes at a time, and runc
 * runs an image from a layout: output, exec (with the image's environment and the host's
 * network), signals, exit codes, and nothing left behind after destroy.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseImagesAvailable, copyToLayout, debianBaseLayout, noGlibcBaseLayout } from '../helpers/oci-base.js';
import { repoRoot, tempDir } from '../helpers/project.js';
import { containersUsable, destroyAll, runcRoot, runImage } from '../helpers/runc.js';

const bases = baseImagesAvailable();
if (!bases.ok) console.warn(`[container-infra] base image tests skipped: ${bases.why}`);
const hasSkopeo = spawnSync('skopeo', ['--version'], { stdio: 'ignore' }).status === 0;
if (!hasSkopeo) console.warn('[container-infra] skopeo checks skipped: skopeo is not on PATH (apt-get install skopeo)');

const BUILD_TIMEOUT_MS = 15 * 60_000;

/** The file names in the layout's (only) layer, from the tag's manifest. */
function layerEntries(layout: string, tag: string): string[] {
  const blob = (digest: string) => path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const desc = index.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  const manifest = JSON.parse(fs.readFileSync(blob(desc.digest), 'utf8'));
  expect(manifest.layers).toHaveLength(1);
  return execFileSync('tar', ['-tzf', blob(manifest.layers[0].digest)], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }).split('\n');
}

describe.skipIf(!bases.ok)('base image layouts', () => {
  let debian: string;
  let noGlibc: string;
  beforeAll(async () => {
    [debian, noGlibc] = await Promise.all([debianBaseLayout(), noGlibcBaseLayout()]);
  }, BUILD_TIMEOUT_MS);

  it.skipIf(!hasSkopeo)('skopeo reads both as OCI layouts with tag base, for this machine', () => {
    const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch as string] ?? process.arch;
    for (const layout of [debian, noGlibc]) {
      const info = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${layout}:base`], { encoding: 'utf8' }));
      expect(info).toMatchObject({ Os: 'linux', Architecture: arch });
      expect(info.Layers).toHaveLength(1);
      const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${layout}:base`], { encoding: 'utf8' }));
      expect(config.rootfs.diff_ids).toHaveLength(1);
    }
  });

  it('the Debian base has /bin/sh, glibc and libstdc++ (usrmerged); the other has no libc at all', () => {
    const deb = new Set(layerEntries(debian, 'base'));
    for (const f of ['./usr/bin/sh', './usr/lib/x86_64-linux-gnu/libc.so.6', './etc/debian_version']) {
      if (process.arch === 'x64' || !f.includes('x86_64')) expect(deb, f).toContain(f);
    }
    expect([...deb].some((f) => /\/libstdc\+\+\.so\.6$/.test(f))).toBe(true);
    expect([...deb].some((f) => f.startsWith('./usr/share/man/') && !f.endsWith('/'))).toBe(false);

    const bare = layerEntries(noGlibc, 'base');
    expect(bare).toContain('./bin/busybox');
    expect(bare).toContain('./bin/sh');
    expect(bare.filter((f) => /libc\.so|ld-linux|\/lib\d*\/.+\.so/.test(f))).toEqual([]);
  });

  it('several processes asking for an uncached image at once build it once and all get it', async () => {
    const t = tempDir('noderel-image-cache-');
    try {
      const log = path.join(t.dir, 'builds.log');
      const script = path.join(t.dir, 'ask.ts');
      fs.writeFileSync(script, `import { noGlibcBaseLayout } from ${JSON.stringify(path.join(repoRoot, 'test/helpers/oci-base.ts'))};\nconsole.log('LAYOUT=' + (await noGlibcBaseLayout()));\n`);
      const env = { ...process.env, NODEREL_CACHE_DIR: path.join(t.dir, 'cache'), NODEREL_TEST_IMAGE_BUILD_LOG: log };
      const ask = () =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const p = spawn(path.join(repoRoot, 'node_modules', '.bin', 'vite-node'), [script], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          p.stdout.on('data', (b) => (out += b));
          p.stderr.on('data', (b) => (out += b));
          p.on('close', (code) => resolve({ code, out }));
        });
      const results = await Promise.all([ask(), ask(), ask()]);
      const want = path.join(t.dir, 'cache', 'images', 'no-glibc-base');
      for (const r of results) {
        expect(r.code, r.out).toBe(0);
        expect(r.out).toContain(`LAYOUT=${want}\n`);
      }
      expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1);
      // Nothing but the layout is left in the cache: no lock, no build dirs.
      expect(fs.readdirSync(path.join(t.dir, 'cache', 'images'))).toEqual(['no-glibc-base']);
    } finally {
      t.cleanup();
    }
  }, BUILD_TIMEOUT_MS);
});

const containers = containersUsable();

describe.skipIf(!bases.ok || !containers.ok)('containers from a layout under runc', () => {
  let debian: string;
  beforeAll(async () => {
    debian = await debianBaseLayout();
  }, BUILD_TIMEOUT_MS);
  afterAll(destroyAll);

  it('runs the image: output, pid, exec with the image environment, the host network, destroy leaves nothing', async () => {
    const c = await runImage({ layout: debian, tag: 'base', env: { GREETING: 'hello', PATH: '/usr/bin:/bin' }, args: ['/bin/sh', '-c', 'echo ready; exec sleep 1000'] });
    await c.waitForOutput(/^ready$/m, 60_000);

    const pid = c.pid();
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]).toBe('sleep');

    const version = await c.exec(['cat', '/etc/debian_version']);
    expect(version).toMatchObject({ status: 0, stderr: '' });
    expect(version.stdout).toMatch(/^12\.\d+/);

    // The container's env (merged: PATH replaced, GREETING added) plus the exec's own; as the image's user (root).
    const env = await c.exec(['/bin/sh', '-c', 'echo "$GREETING $EXTRA $PATH"; id -u; pwd'], { EXTRA: 'there' });
    expect(env.stdout).toBe('hello there /usr/bin:/bin\n0\n/\n');
    expect((await c.exec(['/bin/sh', '-c', 'exit 3'])).status).toBe(3);

    // The host's network namespace: the same netns, and a port on the host's 127.0.0.1 answers from inside.
    expect((await c.exec(['readlink', '/proc/self/ns/net'])).stdout.trim()).toBe(fs.readlinkSync('/proc/self/ns/net'));
    const server = net.createServer((s) => s.end('pong from the host\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const tcp = await c.exec(['bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}; cat <&3`]);
      expect(tcp).toMatchObject({ status: 0, stdout: 'pong from the host\n' });
    } finally {
      server.close();
    }

    await c.destroy();
    expect(await c.waitExit()).not.toBe(0);
    expect(fs.existsSync(c.bundle)).toBe(false);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(c.bundle);
    expect(spawnSync('runc', ['--root', runcRoot(), 'state', c.id]).status).not.toBe(0);
    expect(execFileSync('runc', ['--root', runcRoot(), 'list', '-q'], { encoding: 'utf8' })).not.toContain(c.id);
    await c.destroy(); // twice is fine
  });

  it('each container has its own copy of the image to write to', async () => {
    const sleeper = ['/bin/sh', '-c', 'echo ready; exec sleep 1000'];
    const a = await runImage({ layout: debian, tag: 'base', args: ['/bin/sh', '-c', 'echo a > /etc/written-by-a && rm /etc/debian_version && echo ready; exec sleep 1000'] });
    const b = await runImage({ layout: debian, tag: 'base', args: sleeper });
    await Promise.all([a.waitForOutput(/^ready$/m, 60_000), b.waitForOutput(/^ready$/m, 60_000)]);
    expect(await a.exec(['cat', '/etc/written-by-a'])).toMatchObject({ status: 0, stdout: 'a\n' });
    expect((await a.exec(['test', '-e', '/etc/debian_version'])).status).toBe(1);
    expect((await b.exec(['test', '-e', '/etc/written-by-a'])).status).toBe(1);
    expect((await b.exec(['test', '-e', '/etc/debian_version'])).status).toBe(0);
    await Promise.all([a.destroy(), b.destroy()]);
    const c = await runImage({ layout: debian, tag: 'base', args: ['/bin/sh', '-c', 'test ! -e /etc/written-by-a && test -e /etc/debian_version'] });
    expect(await c.waitExit()).toBe(0);
    await c.destroy();
  });

  it('signals reach the container init: TERM runs its trap and it exits 0', async () => {
    const c = await runImage({
      layout: debian,
      tag: 'base',
      args: ['/bin/sh', '-c', 'trap "echo got TERM; exit 0" TERM; echo ready; sleep 1000 & wait $!'],
    });
    await c.waitForOutput(/^ready$/m, 60_000);
    await c.kill('TERM');
    expect(await c.waitExit(60_000)).toBe(0);
    expect(c.output()).toContain('got TERM\n');
    await expect(c.kill('TERM')).rejects.toThrow();
    await c.destroy();
  });

  it("reports the init's exit code, and one killed by a signal as 128 + n", async () => {
    const done = await runImage({ layout: debian, tag: 'base', args: ['/bin/sh', '-c', 'echo to stdout; echo to stderr >&2; exit 7'] });
    expect(await done.waitExit()).toBe(7);
    expect(done.stdout()).toBe('to stdout\n');
    expect(done.stderr()).toBe('to stderr\n');
    await expect(done.waitForOutput(/never printed/, 60_000)).rejects.toThrow(/ended \(exit 7\)/);
    await done.destroy();

    const killed = await runImage({ layout: debian, tag: 'base', args: ['/bin/sh', '-c', 'echo ready; exec sleep 1000'] });
    await killed.waitForOutput(/ready/, 60_000);
    await killed.kill('KILL');
    expect(await killed.waitExit()).toBe(128 + 9);
    await killed.destroy();
  });

  it('runs the glibc-less base too (its busybox sh)', async () => {
    const c = await runImage({ layout: await noGlibcBaseLayout(), tag: 'base', args: ['/bin/sh', '-c', 'echo static && test ! -e /usr/lib/x86_64-linux-gnu/libc.so.6'] });
    expect(await c.waitExit()).toBe(0);
    expect(c.output()).toBe('static\n');
    await c.destroy();
  });

  it.skipIf(!hasSkopeo)('runs an image that came as a docker-archive (as `noderel image --tar` writes), through copyToLayout', async () => {
    const t = tempDir('noderel-archive-');
    try {
      const archive = path.join(t.dir, 'image.tar');
      // The small base: the archive is written and read back in well under a second.
      execFileSync('skopeo', ['copy', '--quiet', `oci:${await noGlibcBaseLayout()}:base`, `docker-archive:${archive}:example/app:1.0`]);
      const layout = await copyToLayout(`docker-archive:${archive}`, path.join(t.dir, 'layout'), 'app');
      const c = await runImage({ layout, tag: 'app', args: ['/bin/sh', '-c', 'echo from the archive'] });
      expect(await c.waitExit()).toBe(0);
      expect(c.output()).toBe('from the archive\n');
      await c.destroy();
    } finally {
      t.cleanup();
    }
  });

  it("runs as the image's user, and so does exec", async () => {
    const t = tempDir('noderel-user-');
    try {
      const layout = path.join(t.dir, 'layout');
      fs.cpSync(await noGlibcBaseLayout(), layout, { recursive: true });
      execFileSync('umoci', ['config', '--image', `${layout}:base`, '--tag', 'nobody', '--config.user', '65534:65534']);
      const c = await runImage({ layout, tag: 'nobody', args: ['/bin/sh', '-c', 'echo "init $(id -u):$(id -g)"; exec sleep 1000'] });
      await c.waitForOutput(/^init 65534:65534$/m, 60_000);
      expect(await c.exec(['/bin/sh', '-c', 'echo "exec $(id -u):$(id -g)"'])).toMatchObject({ status: 0, stdout: 'exec 65534:65534\n' });
      // As with docker: a non-root user has no capabilities in effect (umoci's config would give it ambient ones).
      expect((await c.exec(['/bin/busybox', 'grep', '^CapEff:', '/proc/self/status'])).stdout).toMatch(/^CapEff:\s+0+\n$/);
      await c.destroy();
    } finally {
      t.cleanup();
    }
  });

  it('a read-only root with tmpfs mounts (readOnlyRootFilesystem and emptyDir volumes)', async () => {
    const c = await runImage({
      layout: debian,
      tag: 'base',
      readonlyRootfs: true,
      tmpfs: { '/var/scratch': 'uid=65534,gid=65534,mode=0700' },
      args: ['/bin/sh', '-c', 'echo ready; exec sleep 1000'],
    });
    await c.waitForOutput(/^ready$/m, 60_000);
    const root = await c.exec(['touch', '/etc/x']);
    expect(root.status).not.toBe(0);
    expect(root.stderr).toMatch(/read-only file system/i);
    expect(await c.exec(['stat', '-c', '%u:%g %a', '/var/scratch'])).toMatchObject({ status: 0, stdout: '65534:65534 700\n' });
    // root has docker's default capabilities: DAC_OVERRIDE lets it into the 0700 directory of 65534
    expect((await c.exec(['touch', '/var/scratch/x'])).status).toBe(0);
    await c.destroy();
  });

  it('a command that cannot start: the container ends non-zero and its output says why', async () => {
    const c = await runImage({ layout: debian, tag: 'base', args: ['/no/such/program'] });
    expect(await c.waitExit()).not.toBe(0);
    expect(c.output()).toMatch(/no such file or directory/i);
    await c.destroy();
  });

  it('an unknown tag is an error naming the tags the layout has', async () => {
    await expect(runImage({ layout: debian, tag: 'nope', args: ['true'] })).rejects.toThrow(/no tag "nope".*tags: base/);
  });
});
