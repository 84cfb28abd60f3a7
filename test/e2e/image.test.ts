/**
 * The demo release `kazoo` as an image, end to end: built by `noderel image` on a Debian base
 * pulled from a real registry (Debian's docker-registry on 127.0.0.1), pushed to it, copied back
 * by skopeo, unpacked by umoci and run by runc; the Kazoo workflow's commands run inside the
 * running container (`runc exec`, as `docker exec` would), the app answers HTTP, HUP reloads,
 * TERM stops it through the staged shutdown.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noderel, repoRoot, tempDir } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { httpGet } from '../helpers/sandbox.js';
import { baseImagesAvailable, debianBaseLayout, pushLayoutToRegistry } from '../helpers/oci-base.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { containersUsable, destroyAll, runImage } from '../helpers/runc.js';

const usable = containersUsable();
const bases = baseImagesAvailable();
const why = !usable.ok ? usable.why : !bases.ok ? bases.why : undefined;
if (why !== undefined) console.log(`skipping the image end-to-end tests: ${why}`);

describe.skipIf(why !== undefined)('the kazoo image under runc', { timeout: 600_000 }, () => {
  let registry: TestRegistry;
  let project: { dir: string; cleanup: () => void };
  const out = tempDir('noderel-image-e2e-');
  const layout = path.join(out.dir, 'layout');
  let digest: string;

  beforeAll(async () => {
    const base = await debianBaseLayout();
    registry = await startRegistry();
    await pushLayoutToRegistry(base, 'base', registry.host, 'library/debian:bookworm');
    project = tempDir('noderel-kazoo-image-');
    for (const d of ['rel', 'apps']) fs.cpSync(path.join(repoRoot, d), path.join(project.dir, d), { recursive: true });
    const r = noderel(project.dir, ['image', '--base', `${registry.host}/library/debian:bookworm`, '--push', `${registry.host}/kazoo:4.3.0`]);
    expect(r.code, r.stderr).toBe(0);
    digest = r.stdout.trim();
    execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${registry.host}/kazoo:4.3.0`, `oci:${layout}:4.3.0`]);
  }, 600_000);
  afterAll(async () => {
    await destroyAll();
    await registry?.stop();
    project?.cleanup();
    out.cleanup();
  });

  it('skopeo copies back the image that was pushed', () => {
    const info = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${layout}:4.3.0`], { encoding: 'utf8' }));
    expect(info.Digest).toBe(digest);
  });

  it('kazoo_apps serves as uid 65532 on a read-only release; ping, status, eval, versions run inside; HUP reloads; TERM drains and exits 0', async () => {
    const port = await freePort();
    const c = await runImage({ layout, tag: '4.3.0', env: { CROSSBAR_PORT: String(port) } });
    await c.waitForOutput(/node kazoo_apps@\S+ ready \(kazoo 4\.3\.0, apps: crossbar; 2 workers\)/, 120_000);
    const res = await httpGet(port, '/');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ release: 'kazoo', version: '4.3.0' });

    const ping = await c.exec(['kazoo', 'ping']);
    expect(ping, ping.stderr).toMatchObject({ status: 0, stdout: 'pong\n' });
    const status = await c.exec(['/opt/kazoo/bin/kazoo', 'status']);
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/workers: +2 of 2 ready/);
    const evaluated = await c.exec(['kazoo', 'eval', '6 * 7']);
    expect(evaluated, evaluated.stderr).toMatchObject({ status: 0, stdout: '42\n' });
    const versions = await c.exec(['kazoo', 'versions']);
    expect(versions.stdout).toMatch(/4\.3\.0/);
    const cookie = await c.exec(['kazoo', 'cookie']);
    expect(cookie.stderr).toMatch(/\/var\/lib\/kazoo\/tmp\/COOKIE/);

    const id = await c.exec(['id', '-u']);
    expect(id.stdout.trim()).toBe('65532');
    const write = await c.exec(['touch', '/opt/kazoo/releases/x']);
    expect(write.status).not.toBe(0);
    // PID 1 is the launcher, the node its child
    const init = fs.readFileSync(`/proc/${c.pid()}/cmdline`, 'utf8').split('\0');
    expect(init.slice(0, 3)).toEqual(['/bin/sh', '/opt/kazoo/bin/kazoo', 'foreground']);

    await c.kill('HUP');
    await c.waitForOutput(/reload|HUP/i);
    expect((await httpGet(port, '/')).status).toBe(200);

    await c.kill('TERM');
    expect(await c.waitExit(120_000)).toBe(0);
    expect(c.output()).toMatch(/stage draining/);
    expect(c.output()).toMatch(/node kazoo_apps@\S+ stopped/);
  });

  it('REL=ecallmgr runs the other node type from the same image, and `kazoo stop` inside ends the container with code 0 (the stop client is killed with it, like a docker exec one)', async () => {
    const port = await freePort();
    const c = await runImage({ layout, tag: '4.3.0', env: { REL: 'ecallmgr', ECALLMGR_PORT: String(port) } });
    await c.waitForOutput(/node ecallmgr@\S+ ready \(kazoo 4\.3\.0, apps: ecallmgr\)/, 120_000);
    expect(await httpGet(port, '/health')).toMatchObject({ status: 200, body: 'ok\n' });
    // when PID 1 (the launcher) exits, the kernel kills what else runs in the container, the
    // `stop` client waiting for the node to be gone among them (as with docker exec)
    const stop = await c.exec(['kazoo', 'stop']);
    expect([0, 137], stop.stderr).toContain(stop.status);
    expect(await c.waitExit(120_000)).toBe(0);
  });
});
