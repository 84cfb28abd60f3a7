/**
 * A real registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, a free
 * port, its own filesystem storage in a temp dir. With `{ auth: 'token' }` it asks for Bearer
 * tokens from a tiny token server in the test process, which checks a username and password and
 * signs RS256 JWTs with a key whose self-signed certificate (openssl) is the registry's
 * rootcertbundle; the JWT's `kid` is the libtrust key id of that key, which is how the registry
 * finds it.
 *
 *   const reg = await startRegistry({ auth: 'token' });   // reg.host === '127.0.0.1:<port>'
 *   ...
 *   await reg.stop();                                     // kills it by pid, removes the dir
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { freePort } from './ports.js';
import { tempDir } from './project.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface StartRegistryOptions {
  /** `token`: Bearer token auth against a token server checking `username`/`password`. */
  auth?: 'none' | 'token';
  username?: string;
  password?: string;
}

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** The token server's realm (token auth only). */
  realm?: string;
  /** Tokens the token server gave out, with the scopes asked for. */
  tokenRequests: { user: string | undefined; scopes: string[] }[];
  /** The registry's output so far (for a failing test). */
  output(): string;
  stop(): Promise<void>;
}

const SERVICE = 'noderel-test-registry';
const ISSUER = 'noderel-test-token-server';

/** Starts a registry; resolves once `GET /v2/` answers. */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const tmp = tempDir('noderel-registry-');
  const port = await freePort();
  const tokenRequests: TestRegistry['tokenRequests'] = [];
  let tokenServer: http.Server | undefined;
  let authYaml = '';
  let realm: string | undefined;
  if (opts.auth === 'token') {
    const key = makeSigningCert(tmp.dir);
    tokenServer = await startTokenServer(key, opts.username ?? 'tester', opts.password ?? 'secret', tokenRequests);
    realm = `http://127.0.0.1:${(tokenServer.address() as net.AddressInfo).port}/token`;
    authYaml = ['auth:', '  token:', `    realm: ${realm}`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`, `    rootcertbundle: ${key.certFile}`].join('\n');
  }
  const configFile = path.join(tmp.dir, 'config.yml');
  fs.writeFileSync(
    configFile,
    [
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(tmp.dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      authYaml,
      '',
    ].join('\n'),
  );
  const proc = spawn(REGISTRY_BIN, ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' } });
  let output = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    await killAndWait(proc, exited);
    await new Promise<void>((resolve) => (tokenServer ? tokenServer.close(() => resolve()) : resolve()));
    tmp.cleanup();
  };
  try {
    await waitUntilAnswering(port, proc, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  const reg: TestRegistry = { host: `127.0.0.1:${port}`, tokenRequests, output: () => output, stop };
  if (realm !== undefined) reg.realm = realm;
  return reg;
}

async function killAndWait(proc: ChildProcess, exited: Promise<void>): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  try {
    process.kill(proc.pid!, 'SIGKILL');
  } catch {
    return;
  }
  await exited;
}

/** Polls `GET /v2/` until any HTTP answer (200, or 401 with token auth). */
async function waitUntilAnswering(port: number, proc: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`docker-registry exited (${proc.exitCode ?? proc.signalCode}):\n${output()}`);
    const status = await new Promise<number>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/v2/' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
    });
    if (status === 200 || status === 401) return;
    if (Date.now() > deadline) throw new Error(`docker-registry on port ${port} did not answer GET /v2/ within 30 s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface SigningKey {
  privateKey: KeyObject;
  certFile: string;
  kid: string;
}

/** An RSA key and its self-signed certificate, made with openssl; `kid` is its libtrust key id. */
function makeSigningCert(dir: string): SigningKey {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'token.key', '-out', 'token.pem', '-days', '2', '-subj', '/CN=noderel test token signer'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const privateKey = createPrivateKey(fs.readFileSync(path.join(dir, 'token.key')));
  const der = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  return { privateKey, certFile: path.join(dir, 'token.pem'), kid: libtrustKeyId(der) };
}

/** libtrust's key id: base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo), in groups of 4 joined by ':'. */
export function libtrustKeyId(spkiDer: Buffer): string {
  const hash = createHash('sha256').update(spkiDer).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const byte of hash) bits += byte.toString(2).padStart(8, '0');
  let b32 = '';
  for (let i = 0; i < bits.length; i += 5) b32 += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return b32.match(/.{4}/g)!.join(':');
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

function signJwt(key: SigningKey, claims: Record<string, unknown>): string {
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: key.kid }));
  const body = b64url(JSON.stringify(claims));
  const signature = sign('sha256', Buffer.from(`${head}.${body}`), key.privateKey);
  return `${head}.${body}.${b64url(signature)}`;
}

/** The token server: Basic auth with the right user/password gets every action asked for; anonymous gets none; wrong gets 401. */
async function startTokenServer(key: SigningKey, username: string, password: string, log: TestRegistry['tokenRequests']): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    const [user, pass] = basic ? splitOnce(Buffer.from(basic[1]!, 'base64').toString('utf8')) : [undefined, undefined];
    if (url.pathname !== '/token' || url.searchParams.get('service') !== SERVICE || (basic && (user !== username || pass !== password))) {
      res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ details: 'wrong username or password' }));
      return;
    }
    log.push({ user, scopes });
    const access = basic ? scopes.map(parseScope).filter((a) => a !== undefined) : [];
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: ISSUER, sub: user ?? '', aud: SERVICE, exp: now + 3600, nbf: now - 60, iat: now, jti: randomUUID(), access };
    const token = signJwt(key, claims);
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 3600 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function splitOnce(s: string): [string, string] {
  const i = s.indexOf(':');
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
}

function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const m = /^([a-z]+):(.+):([a-z*,]+)$/.exec(scope);
  return m ? { type: m[1]!, name: m[2]!, actions: m[3]!.split(',') } : undefined;
}
