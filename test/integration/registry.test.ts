// The registry client against a real registry (Debian's docker-registry, distribution 2.8) on
// 127.0.0.1, with skopeo as the ground truth for what was pushed: blobs and an OCI manifest of a
// tiny valid image, a second push that sends no blob bytes, a cross-repository mount, a pull
// through a two-platform index, and token auth with right and wrong credentials.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NoderelError } from '../../src/errors.js';
import { MEDIA, describe as describeBlob, jsonBytes, sha256Digest, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from '../../src/image/oci.js';
import { fetchImageMetadata, pullImage } from '../../src/image/pull.js';
import { RegistryClient } from '../../src/image/registry.js';
import { freePort } from '../helpers/ports.js';
import { tempDir } from '../helpers/project.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

/** A one-file ustar archive (header, data padded to 512, two zero blocks). */
function tarOf(name: string, text: string): Buffer {
  const data = Buffer.from(text);
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024)]);
}

interface TinyImage {
  config: Buffer;
  layer: Buffer;
  manifest: Buffer;
  manifestDigest: string;
}

/** A valid image: one gzipped layer holding `hello.txt`, a config for `platform`, an OCI manifest. */
function tinyImage(platform: Platform, text = 'hello from noderel\n', mediaTypes: 'oci' | 'docker' = 'oci'): TinyImage {
  const tar = tarOf('hello.txt', text);
  const layer = gzipSync(tar);
  const cfg: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Cmd: ['/hello.txt'] },
    rootfs: { type: 'layers', diff_ids: [sha256Digest(tar)] },
  };
  const config = jsonBytes(cfg);
  const oci = mediaTypes === 'oci';
  const doc: ImageManifest = {
    schemaVersion: 2,
    mediaType: oci ? MEDIA.ociManifest : MEDIA.dockerManifest,
    config: describeBlob(oci ? MEDIA.ociConfig : MEDIA.dockerConfig, config),
    layers: [describeBlob(oci ? MEDIA.ociLayerGzip : MEDIA.dockerLayerGzip, layer)],
  };
  const manifest = jsonBytes(doc);
  return { config, layer, manifest, manifestDigest: sha256Digest(manifest) };
}

async function pushImage(client: RegistryClient, img: TinyImage, tag: string, mountFrom?: string): Promise<string> {
  const opts = mountFrom ? { mountFrom } : {};
  await client.pushBlob(sha256Digest(img.config), img.config, opts);
  await client.pushBlob(sha256Digest(img.layer), img.layer, opts);
  const mediaType = (JSON.parse(img.manifest.toString()) as ImageManifest).mediaType;
  return client.putManifest(tag, mediaType, img.manifest);
}

function skopeo(args: string[], env: NodeJS.ProcessEnv = {}): string {
  return execFileSync('skopeo', args, { encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The error `p` rejects with, which must be a NoderelError. */
async function rejection(p: Promise<unknown>): Promise<NoderelError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(NoderelError);
    return err as NoderelError;
  }
  throw new Error('expected a NoderelError, nothing was thrown');
}

/** An environment with no credentials anywhere (HOME and DOCKER_CONFIG in an empty dir). */
function cleanEnv(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: dir, DOCKER_CONFIG: path.join(dir, 'no-docker'), ...extra };
}

const amd64: Platform = { os: 'linux', architecture: 'amd64' };
const arm64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };

describe('a registry without auth', () => {
  let reg: TestRegistry;
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    reg = await startRegistry();
    tmp = tempDir('noderel-registry-test-');
  });
  afterAll(async () => {
    await reg?.stop();
    tmp?.cleanup();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`--- docker-registry output ---\n${reg.output()}--- end ---`);
  });
  const client = (repo: string) => new RegistryClient(reg.host, repo, { env: cleanEnv(tmp.dir) });
  const img = tinyImage(amd64);

  it('pushes two blobs and an OCI manifest that skopeo reads back', async () => {
    const c = client('noderel/tiny');
    expect(c.baseUrl).toBe(`http://${reg.host}`);
    const digest = await pushImage(c, img, 'v1');
    expect(digest).toBe(img.manifestDigest);
    expect(c.bytesUploaded).toBe(img.config.length + img.layer.length);
    const info = JSON.parse(skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/noderel/tiny:v1`])) as Record<string, unknown>;
    expect(info.Digest).toBe(img.manifestDigest);
    expect(info.Architecture).toBe('amd64');
    expect(info.Os).toBe('linux');
    expect(info.Layers).toEqual([sha256Digest(img.layer)]);
    const raw = skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/noderel/tiny:v1`]);
    expect(Buffer.from(raw)).toEqual(img.manifest);
  });

  it('a second push of the same image uploads no blob bytes', async () => {
    const c = client('noderel/tiny');
    expect(await c.pushBlob(sha256Digest(img.layer), img.layer)).toEqual({ uploaded: 0 });
    await pushImage(c, img, 'v2');
    expect(c.bytesUploaded).toBe(0);
    expect(await c.hasBlob(sha256Digest(img.config))).toBe(true);
    const m = await c.getManifest('v2', [MEDIA.ociManifest]);
    expect(m).toEqual({ mediaType: MEDIA.ociManifest, body: img.manifest, digest: img.manifestDigest });
  });

  it('a code-only change uploads only the changed layer', async () => {
    const changed = tinyImage(amd64, 'hello again\n');
    const c = client('noderel/tiny');
    await pushImage(c, changed, 'v3');
    expect(c.bytesUploaded).toBe(changed.config.length + changed.layer.length);
    const c2 = client('noderel/tiny');
    await pushImage(c2, changed, 'v3');
    expect(c2.bytesUploaded).toBe(0);
  });

  it('mounts blobs from another repository of the registry: 0 bytes uploaded to the new one', async () => {
    const c = client('noderel/copy');
    expect(await c.hasBlob(sha256Digest(img.layer))).toBe(false);
    const digest = await pushImage(c, img, 'v1', 'noderel/tiny');
    expect(digest).toBe(img.manifestDigest);
    expect(c.bytesUploaded).toBe(0);
    expect(await c.hasBlob(sha256Digest(img.layer))).toBe(true);
    const info = JSON.parse(skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/noderel/copy:v1`])) as Record<string, unknown>;
    expect(info.Digest).toBe(img.manifestDigest);
    // the mount itself answers 201; a blob the source lacks is declined (202, upload cancelled)
    const c3 = client('noderel/third');
    expect(await c3.mountBlob(sha256Digest(img.config), 'noderel/tiny')).toBe(true);
    expect(await c3.mountBlob(sha256Digest(Buffer.from('not there')), 'noderel/tiny')).toBe(false);
    // pushBlob with a mount the registry declines uploads through the upload it opened
    const fresh = Buffer.from('only here');
    expect(await c3.pushBlob(sha256Digest(fresh), fresh, { mountFrom: 'noderel/tiny' })).toEqual({ uploaded: fresh.length });
    expect(await client('noderel/fourth').getBlob(sha256Digest(fresh)).catch((e: Error) => e.message)).toContain('BLOB_UNKNOWN');
    expect(await c3.getBlob(sha256Digest(fresh))).toEqual(fresh);
  });

  it('pulls the platform asked for through an OCI index, and caches the blobs', async () => {
    const c = client('noderel/multi');
    const imgs = { amd64: tinyImage(amd64, 'amd64\n'), arm64: tinyImage(arm64, 'arm64\n') };
    await pushImage(c, imgs.amd64, imgs.amd64.manifestDigest);
    await pushImage(c, imgs.arm64, imgs.arm64.manifestDigest);
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [
        { ...describeBlob(MEDIA.ociManifest, imgs.amd64.manifest), platform: amd64 },
        { ...describeBlob(MEDIA.ociManifest, imgs.arm64.manifest), platform: arm64 },
      ],
    };
    const indexDigest = await c.putManifest('multi', MEDIA.ociIndex, jsonBytes(index));
    const raw = JSON.parse(skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/noderel/multi:multi`])) as ImageIndex;
    expect(raw.mediaType).toBe(MEDIA.ociIndex);
    expect(raw.manifests.map((m) => m.platform?.architecture)).toEqual(['amd64', 'arm64']);

    const cacheDir = path.join(tmp.dir, 'cache');
    const pulled = await pullImage(`${reg.host}/noderel/multi:multi`, { os: 'linux', architecture: 'arm64' }, { cacheDir, env: cleanEnv(tmp.dir) });
    expect(pulled.config.architecture).toBe('arm64');
    expect(pulled.digest).toBe(imgs.arm64.manifestDigest);
    expect(pulled.indexDigest).toBe(indexDigest);
    expect(pulled.configBytes).toEqual(imgs.arm64.config);
    expect(pulled.layers.map((l) => l.data)).toEqual([imgs.arm64.layer]);
    expect(pulled.registry).toBe(reg.host);
    expect(pulled.repository).toBe('noderel/multi');
    const layerFile = path.join(cacheDir, 'blobs', 'sha256', sha256Digest(imgs.arm64.layer).slice(7));
    expect(fs.readFileSync(layerFile)).toEqual(imgs.arm64.layer);

    // a corrupt cached copy is noticed and fetched again
    fs.writeFileSync(layerFile, 'garbage');
    const again = await pullImage(`${reg.host}/noderel/multi@${indexDigest}`, arm64, { cacheDir, env: cleanEnv(tmp.dir) });
    expect(again.layers[0]!.data).toEqual(imgs.arm64.layer);
    expect(fs.readFileSync(layerFile)).toEqual(imgs.arm64.layer);

    const meta = await fetchImageMetadata(`${reg.host}/noderel/multi:multi`, amd64, { env: cleanEnv(tmp.dir) });
    expect(meta.config.architecture).toBe('amd64');
    expect('layers' in meta).toBe(false);
  });

  it('a platform the index lacks is one line listing the platforms it has', async () => {
    const err = await rejection(pullImage(`${reg.host}/noderel/multi:multi`, { os: 'linux', architecture: 's390x' }, { env: cleanEnv(tmp.dir) }));
    expect(err.code).toBe('EIMAGEPLATFORM');
    expect(err.message).toBe(`${reg.host}/noderel/multi:multi has no image for linux/s390x; it has linux/amd64, linux/arm64/v8`);
    expect(err.format()).not.toContain('\n');
  });

  it('pulls a Docker schema 2 image, and refuses one of another platform', async () => {
    const c = client('noderel/docker');
    const dimg = tinyImage(amd64, 'docker\n', 'docker');
    await pushImage(c, dimg, 'latest');
    const pulled = await pullImage(`${reg.host}/noderel/docker`, amd64, { env: cleanEnv(tmp.dir) });
    expect(pulled.manifest.mediaType).toBe(MEDIA.dockerManifest);
    expect(pulled.layers[0]!.data).toEqual(dimg.layer);
    const err = await rejection(pullImage(`${reg.host}/noderel/docker`, arm64, { env: cleanEnv(tmp.dir) }));
    expect(err.message).toBe(`${reg.host}/noderel/docker:latest is a linux/amd64 image, not linux/arm64/v8`);
  });

  it('an unknown manifest is one line with the registry error code', async () => {
    const err = await rejection(client('noderel/tiny').getManifest('nope', [MEDIA.ociManifest]));
    expect(err.code).toBe('EREGISTRY');
    expect(err.message).toBe(`registry ${reg.host}, repository noderel/tiny: manifest nope: MANIFEST_UNKNOWN: manifest unknown (HTTP 404)`);
  });
});

describe('a registry with token auth', () => {
  let reg: TestRegistry;
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token', username: 'alice', password: 'opensesame' });
    tmp = tempDir('noderel-registry-test-');
  });
  afterAll(async () => {
    await reg?.stop();
    tmp?.cleanup();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`--- docker-registry output ---\n${reg.output()}--- end ---`);
  });
  const img = tinyImage(amd64, 'token\n');

  it('pushes and pulls with NODEREL_REGISTRY_USERNAME/PASSWORD', async () => {
    const env = cleanEnv(tmp.dir, { NODEREL_REGISTRY_USERNAME: 'alice', NODEREL_REGISTRY_PASSWORD: 'opensesame' });
    const c = new RegistryClient(reg.host, 'team/app', { env });
    expect(await pushImage(c, img, 'v1')).toBe(img.manifestDigest);
    expect(c.bytesUploaded).toBe(img.config.length + img.layer.length);
    const pulled = await pullImage(`${reg.host}/team/app:v1`, amd64, { env });
    expect(pulled.layers[0]!.data).toEqual(img.layer);
    expect(reg.tokenRequests.some((r) => r.user === 'alice' && r.scopes.includes('repository:team/app:pull,push'))).toBe(true);
    expect(reg.tokenRequests.some((r) => r.user === 'alice' && r.scopes.includes('repository:team/app:pull'))).toBe(true);
    // a mount asks for pull on the source repository too
    const m = new RegistryClient(reg.host, 'team/copy', { env });
    await pushImage(m, img, 'v1', 'team/app');
    expect(m.bytesUploaded).toBe(0);
    expect(reg.tokenRequests.some((r) => r.scopes.includes('repository:team/copy:pull,push') && r.scopes.includes('repository:team/app:pull'))).toBe(true);
  });

  it('wrong NODEREL_REGISTRY_PASSWORD: one line naming the registry, the repository and where credentials come from', async () => {
    const env = cleanEnv(tmp.dir, { NODEREL_REGISTRY_USERNAME: 'alice', NODEREL_REGISTRY_PASSWORD: 'wrong' });
    const err = await rejection(new RegistryClient(reg.host, 'team/app', { env }).getManifest('v1', [MEDIA.ociManifest]));
    expect(err.code).toBe('EREGISTRYAUTH');
    expect(err.message).toContain(`registry ${reg.host}, repository team/app: not authorized`);
    expect(err.message).toContain('credentials from NODEREL_REGISTRY_USERNAME/NODEREL_REGISTRY_PASSWORD');
    expect(err.hint).toContain(path.join(tmp.dir, 'no-docker', 'config.json'));
    expect(err.format()).not.toContain('\n');
  });

  it('no credentials: not authorized, naming where they are read from', async () => {
    const err = await rejection(new RegistryClient(reg.host, 'team/app', { env: cleanEnv(tmp.dir) }).getManifest('v1', [MEDIA.ociManifest]));
    expect(err.code).toBe('EREGISTRYAUTH');
    expect(err.message).toContain('(no credentials)');
  });

  it('reads auths from a docker config.json in DOCKER_CONFIG; a wrong password there names the file', async () => {
    const dockerDir = path.join(tmp.dir, 'docker');
    fs.mkdirSync(dockerDir, { recursive: true });
    const write = (pass: string) => fs.writeFileSync(path.join(dockerDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`alice:${pass}`).toString('base64') } } }));
    const env = { ...cleanEnv(tmp.dir), DOCKER_CONFIG: dockerDir };
    write('opensesame');
    const pulled = await pullImage(`${reg.host}/team/app:v1`, amd64, { env });
    expect(pulled.digest).toBe(img.manifestDigest);
    write('wrong');
    const err = await rejection(pullImage(`${reg.host}/team/app:v1`, amd64, { env }));
    expect(err.code).toBe('EREGISTRYAUTH');
    expect(err.message).toContain(`credentials from auths["${reg.host}"] in ${path.join(dockerDir, 'config.json')}`);
  });
});

it('connection refused is one line naming the URL', async () => {
  const port = await freePort();
  const t = tempDir();
  try {
    const err = await rejection(new RegistryClient(`127.0.0.1:${port}`, 'a/b', { env: cleanEnv(t.dir) }).getManifest('latest', [MEDIA.ociManifest]));
    expect(err.code).toBe('EREGISTRY');
    expect(err.message).toBe(`cannot reach http://127.0.0.1:${port}/v2/a/b/manifests/latest (connection refused)`);
    expect(err.format()).not.toContain('\n');
  } finally {
    t.cleanup();
  }
});

/**
 * A Node fake of the parts of the protocol the real registry above does not exercise: HTTP Basic
 * challenges, a relative upload Location with a query of its own, blob GETs redirected (307) to
 * a storage server on another host:port, an identity token exchanged at the realm by POST, a
 * manifest whose Docker-Content-Digest does not match its body.
 */
describe('a Node fake registry (Basic auth, relative Location, redirects to storage, identity tokens)', () => {
  const blobs = new Map<string, Buffer>();
  const seen: { storageAuthorization: (string | undefined)[]; puts: string[]; tokenForms: URLSearchParams[] } = { storageAuthorization: [], puts: [], tokenForms: [] };
  const servers: http.Server[] = [];
  let registryHost = '';
  let storagePort = 0;
  let tmp: { dir: string; cleanup: () => void };
  const basic = `Basic ${Buffer.from('bob:builder').toString('base64')}`;

  async function listen(handler: http.RequestListener): Promise<number> {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as net.AddressInfo).port;
  }

  function registryHandler(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const bearer = url.pathname.startsWith('/v2/id/');
    if (bearer ? req.headers.authorization !== 'Bearer from-refresh' : req.headers.authorization !== basic) {
      const challenge = bearer ? `Bearer realm="http://${registryHost}/token",service="fake"` : 'Basic realm="fake"';
      res.writeHead(401, { 'WWW-Authenticate': challenge, 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    const blob = /^\/v2\/[a-z/]+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (blob && req.method === 'HEAD') return void res.writeHead(blobs.has(blob[1]!) ? 200 : 404).end();
    if (blob && req.method === 'GET') return void res.writeHead(307, { Location: `http://127.0.0.1:${storagePort}/storage/${blob[1]}?sig=1` }).end();
    if (req.method === 'POST' && /\/blobs\/uploads\/$/.test(url.pathname)) {
      return void res.writeHead(202, { Location: `${url.pathname}u1?state=abc` }).end();
    }
    if (req.method === 'PUT' && url.pathname.endsWith('/blobs/uploads/u1')) {
      seen.puts.push(url.search);
      blobs.set(url.searchParams.get('digest')!, body);
      return void res.writeHead(201).end();
    }
    if (url.pathname.endsWith('/manifests/tampered')) {
      return void res.writeHead(200, { 'Content-Type': MEDIA.ociManifest, 'Docker-Content-Digest': sha256Digest('something else') }).end('{"schemaVersion":2}');
    }
    if (req.method === 'PUT' && url.pathname.includes('/manifests/')) {
      return void res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{}}]}');
    }
    res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}');
  }

  beforeAll(async () => {
    tmp = tempDir('noderel-fake-registry-');
    storagePort = await listen((req, res) => {
      seen.storageAuthorization.push(req.headers.authorization);
      const digest = /\/storage\/(sha256:[0-9a-f]{64})/.exec(req.url ?? '')?.[1];
      const data = digest ? blobs.get(digest) : undefined;
      res.writeHead(data ? 200 : 404).end(data);
    });
    const port = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.url === '/token' && req.method === 'POST') {
          const form = new URLSearchParams(body.toString());
          seen.tokenForms.push(form);
          const ok = form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === 'refresh-me';
          res.writeHead(ok ? 200 : 401, { 'Content-Type': 'application/json' }).end(ok ? '{"access_token":"from-refresh"}' : '{}');
          return;
        }
        registryHandler(req, res, body);
      });
    });
    registryHost = `127.0.0.1:${port}`;
  });
  afterAll(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    tmp?.cleanup();
  });

  const creds = { username: 'bob', password: 'builder', source: 'the test' };

  it('Basic auth; a relative Location with its own query; the blob GET follows a 307 to storage without the Authorization header', async () => {
    const c = new RegistryClient(registryHost, 'fake/app', { credentials: creds, env: cleanEnv(tmp.dir) });
    const data = Buffer.from('a blob behind a redirect');
    const digest = sha256Digest(data);
    expect(await c.pushBlob(digest, data)).toEqual({ uploaded: data.length });
    expect(seen.puts).toEqual([`?state=abc&digest=${encodeURIComponent(digest)}`]);
    expect(await c.getBlob(digest)).toEqual(data);
    expect(seen.storageAuthorization).toEqual([undefined]);
    expect(await c.pushBlob(digest, data)).toEqual({ uploaded: 0 });
    expect(c.bytesUploaded).toBe(data.length);
  });

  it('Basic auth without credentials is one line naming the registry, the repository and where credentials are read from', async () => {
    const err = await rejection(new RegistryClient(registryHost, 'fake/app', { env: cleanEnv(tmp.dir) }).hasBlob(sha256Digest('x')));
    expect(err.code).toBe('EREGISTRYAUTH');
    expect(err.message).toBe(`registry ${registryHost}, repository fake/app: not authorized, no credentials were found (no credentials)`);
    expect(err.hint).toBe(`credentials are read from NODEREL_REGISTRY_USERNAME/NODEREL_REGISTRY_PASSWORD or ${path.join(tmp.dir, 'no-docker', 'config.json')} (docker login)`);
  });

  it('an identity token (docker login with a token) is exchanged at the realm by POST', async () => {
    const c = new RegistryClient(registryHost, 'id/app', { credentials: { identityToken: 'refresh-me', source: 'the test' }, env: cleanEnv(tmp.dir) });
    expect(await c.hasBlob(sha256Digest('absent'))).toBe(false);
    expect(seen.tokenForms.at(-1)?.get('scope')).toBe('repository:id/app:pull,push');
    expect(seen.tokenForms.at(-1)?.get('service')).toBe('fake');
  });

  it('a manifest whose Docker-Content-Digest does not match its body, and a registry error on PUT, are one line each', async () => {
    const c = new RegistryClient(registryHost, 'fake/app', { credentials: creds, env: cleanEnv(tmp.dir) });
    const bad = await rejection(c.getManifest('tampered', [MEDIA.ociManifest]));
    expect(bad.message).toBe(`registry ${registryHost}, repository fake/app: manifest tampered has digest ${sha256Digest('{"schemaVersion":2}')}, expected ${sha256Digest('something else')}`);
    const put = await rejection(c.putManifest('v1', MEDIA.ociManifest, Buffer.from('{}')));
    expect(put.message).toBe(`registry ${registryHost}, repository fake/app: manifest v1: MANIFEST_INVALID: manifest invalid (HTTP 400)`);
  });
});
