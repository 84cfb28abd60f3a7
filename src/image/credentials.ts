/**
 * Credentials for a registry host, found where docker, ko and Jib find them, in this order:
 *
 * 1. The environment: NODEREL_REGISTRY_USERNAME and NODEREL_REGISTRY_PASSWORD (both set). They
 *    apply to every registry noderel talks to, so set them only for a push to one registry
 *    (e.g. in CI: NODEREL_REGISTRY_USERNAME=ci NODEREL_REGISTRY_PASSWORD=$TOKEN noderel image ...).
 * 2. Docker's config file, `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`:
 *    `credHelpers[host]` (runs `docker-credential-<name> get`), then `credsStore` (the same, for
 *    every host), then `auths[host]` (`auth`: base64 `user:password`; or `username` + `password`;
 *    or `identitytoken`). Docker Hub is looked up under `https://index.docker.io/v1/`.
 *
 * Nothing found means anonymous access.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NoderelError } from '../errors.js';

export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker login's `identitytoken`), exchanged at the token realm. */
  identityToken?: string;
  /** Where they came from, for messages: `NODEREL_REGISTRY_USERNAME/PASSWORD`, a file and key, a helper. */
  source: string;
}

export const ENV_USERNAME = 'NODEREL_REGISTRY_USERNAME';
export const ENV_PASSWORD = 'NODEREL_REGISTRY_PASSWORD';
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The docker config file consulted (it may not exist). */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

/** Where credentials are read from, for an error message. */
export function credentialSources(env: NodeJS.ProcessEnv = process.env): string {
  return `${ENV_USERNAME}/${ENV_PASSWORD} or ${dockerConfigPath(env)} (docker login)`;
}

/** The key Docker uses for `host` in `auths` and `credHelpers`. */
function configKey(host: string): string {
  return DOCKER_HUB_HOSTS.has(host) ? DOCKER_HUB_KEY : host;
}

/** `https://host/v1/` and `host` name the same registry in `auths` (docker strips scheme and path). */
function normalizeKey(key: string): string {
  const bare = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  return DOCKER_HUB_HOSTS.has(bare) ? DOCKER_HUB_KEY : bare;
}

function readDockerConfig(file: string): DockerConfig | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new NoderelError('ECREDENTIALS', `${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new NoderelError('ECREDENTIALS', `${file}: not valid JSON (${(err as Error).message})`, { hint: 'fix the file or run docker login again' });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new NoderelError('ECREDENTIALS', `${file}: expected a JSON object with "auths", found ${Array.isArray(doc) ? 'an array' : typeof doc}`, { hint: 'fix the file or run docker login again' });
  }
  return doc as DockerConfig;
}

/** Credentials for a registry host (`ghcr.io`, `127.0.0.1:5000`), or undefined for anonymous access. */
export function findCredentials(host: string, env: NodeJS.ProcessEnv = process.env): RegistryCredentials | undefined {
  const user = env[ENV_USERNAME];
  const pass = env[ENV_PASSWORD];
  if (user && pass) return { username: user, password: pass, source: `${ENV_USERNAME}/${ENV_PASSWORD}` };
  const file = dockerConfigPath(env);
  const config = readDockerConfig(file);
  if (!config) return undefined;
  const key = configKey(host);
  const helper = config.credHelpers?.[key] ?? config.credHelpers?.[host];
  if (typeof helper === 'string' && helper !== '') return fromHelper(helper, key, `credHelpers in ${file}`, env);
  if (typeof config.credsStore === 'string' && config.credsStore !== '') {
    const found = fromHelper(config.credsStore, key, `credsStore in ${file}`, env);
    if (found) return found;
  }
  return fromAuths(config, key, file);
}

function fromAuths(config: DockerConfig, key: string, file: string): RegistryCredentials | undefined {
  if (config.auths === undefined || typeof config.auths !== 'object') return undefined;
  const match = Object.keys(config.auths).find((k) => k === key) ?? Object.keys(config.auths).find((k) => normalizeKey(k) === key);
  if (match === undefined) return undefined;
  const entry = config.auths[match] ?? {};
  const source = `auths[${JSON.stringify(match)}] in ${file}`;
  if (entry.identitytoken) return { identityToken: entry.identitytoken, username: entry.username, source };
  if (entry.username && entry.password) return { username: entry.username, password: entry.password, source };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      throw new NoderelError('ECREDENTIALS', `${source}: "auth" is not base64 of user:password`, { hint: 'run docker login again' });
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source };
  }
  return undefined;
}

/** Runs `docker-credential-<name> get` with the server on stdin; `<token>` as user means an identity token. */
function fromHelper(name: string, key: string, where: string, env: NodeJS.ProcessEnv): RegistryCredentials | undefined {
  const bin = `docker-credential-${name}`;
  const r = spawnSync(bin, ['get'], { input: key, encoding: 'utf8', env, timeout: 60_000 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NoderelError('ECREDENTIALS', `${bin} (named by ${where}) is not on PATH`, { hint: `install ${bin}, or remove it from the docker config` });
    throw new NoderelError('ECREDENTIALS', `${bin} get failed (${code ?? r.error.message})`, { cause: r.error });
  }
  const out = r.stdout.trim();
  if (r.status !== 0) {
    // docker treats "credentials not found" as no credentials
    if (/not found/i.test(out + r.stderr)) return undefined;
    const why = (r.stderr.trim() || out).split('\n')[0] ?? '';
    throw new NoderelError('ECREDENTIALS', `${bin} get for ${key} failed (${r.signal ?? `exit ${r.status}`}): ${why}`, { hint: `check ${bin}, named by ${where}` });
  }
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(out) as typeof doc;
  } catch {
    throw new NoderelError('ECREDENTIALS', `${bin} get for ${key} printed no JSON {"Username","Secret"}`, { hint: `check ${bin}, named by ${where}` });
  }
  if (typeof doc.Secret !== 'string' || doc.Secret === '') return undefined;
  const source = `${bin} (${where})`;
  if (doc.Username === '<token>') return { identityToken: doc.Secret, source };
  return { username: typeof doc.Username === 'string' ? doc.Username : '', password: doc.Secret, source };
}
