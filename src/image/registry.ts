/**
 * A client of the Registry HTTP API v2 (the OCI distribution spec) for one registry and one
 * repository: manifests and blobs, up and down, as docker, ko and Jib speak it. Anonymous first;
 * on a 401 it follows the `WWW-Authenticate` challenge (a Bearer token from the realm, cached
 * per scope, or HTTP Basic) with the credentials of credentials.ts. HTTPS, except for loopback
 * hosts and those in NODEREL_INSECURE_REGISTRIES. Whole bodies are held in memory as Buffers.
 */
import http from 'node:http';
import https from 'node:https';
import { NoderelError } from '../errors.js';
import { sha256Digest } from './oci.js';
import { credentialSources, findCredentials, type RegistryCredentials } from './credentials.js';

export interface RegistryClientOptions {
  /** Credentials to use; undefined: look them up (credentials.ts); null: anonymous only. */
  credentials?: RegistryCredentials | null;
  /** The environment read for credentials and NODEREL_INSECURE_REGISTRIES (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The actions asked for on the repository (default `pull,push`; `pull` for a read-only client). */
  actions?: string;
  /** Idle socket timeout of one request (default 120 s). */
  timeoutMs?: number;
}

export interface FetchedManifest {
  mediaType: string;
  body: Buffer;
  digest: string;
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  url: URL;
}

interface RequestSpec {
  method: string;
  /** Path under the registry (`/v2/...`) or an absolute URL (an upload Location). */
  target: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Extra token scopes (a mount's source repository). */
  extraScopes?: string[];
  /** Follow 3xx (GET/HEAD of blobs). */
  follow?: boolean;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export const INSECURE_ENV = 'NODEREL_INSECURE_REGISTRIES';
const USER_AGENT = 'noderel';

/** Plain HTTP for loopback hosts and those listed in NODEREL_INSECURE_REGISTRIES (host or host:port). */
export function registryUsesHttp(host: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  if (hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)) return true;
  const listed = (env[INSECURE_ENV] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  return listed.includes(host) || listed.includes(hostname);
}

/** Parses `Bearer realm="...",service="...",scope="..."` (quoted values may hold commas). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(m[2]!); p; p = re.exec(m[2]!)) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

export class RegistryClient {
  readonly registry: string;
  readonly repository: string;
  /** Blob bytes sent to the registry by this client so far. */
  bytesUploaded = 0;
  readonly #base: URL;
  readonly #env: NodeJS.ProcessEnv;
  readonly #actions: string;
  readonly #timeoutMs: number;
  #credentials: RegistryCredentials | null | undefined;
  #credentialsLooked = false;
  /** Bearer tokens by scope list. */
  readonly #tokens = new Map<string, string>();
  #challenge: Challenge | undefined;

  constructor(registry: string, repository: string, opts: RegistryClientOptions = {}) {
    this.registry = registry;
    this.repository = repository;
    this.#env = opts.env ?? process.env;
    this.#base = new URL(`${registryUsesHttp(registry, this.#env) ? 'http' : 'https'}://${registry}`);
    this.#actions = opts.actions ?? 'pull,push';
    this.#timeoutMs = opts.timeoutMs ?? 120_000;
    if (opts.credentials !== undefined) {
      this.#credentials = opts.credentials;
      this.#credentialsLooked = true;
    }
  }

  /** `http://host:port` or `https://host`. */
  get baseUrl(): string {
    return this.#base.origin;
  }

  #repoPath(rest: string): string {
    return `/v2/${this.repository}/${rest}`;
  }

  /** A manifest or index by tag or digest; its digest checked against the reference or Docker-Content-Digest. */
  async getManifest(reference: string, accept: readonly string[]): Promise<FetchedManifest> {
    const res = await this.#send({ method: 'GET', target: this.#repoPath(`manifests/${reference}`), headers: { Accept: accept.join(', ') } });
    if (res.status !== 200) throw this.#failure(res, `manifest ${reference}`);
    const digest = sha256Digest(res.body);
    const expected = reference.startsWith('sha256:') ? reference : headerValue(res.headers['docker-content-digest']);
    if (expected !== undefined && expected.startsWith('sha256:') && expected !== digest) {
      throw new NoderelError('EREGISTRY', `${this.#where()}: manifest ${reference} has digest ${digest}, expected ${expected}`, { hint: 'the registry or a proxy altered it; try again' });
    }
    let mediaType = headerValue(res.headers['content-type'])?.split(';')[0]?.trim() ?? '';
    try {
      const doc = JSON.parse(res.body.toString('utf8')) as { mediaType?: unknown };
      if (typeof doc.mediaType === 'string' && doc.mediaType !== '') mediaType = doc.mediaType;
    } catch {
      throw new NoderelError('EREGISTRY', `${this.#where()}: manifest ${reference} is not JSON (Content-Type ${mediaType || 'none'})`);
    }
    return { mediaType, body: res.body, digest };
  }

  /** A blob's bytes, following redirects to storage, verified against the digest. */
  async getBlob(digest: string): Promise<Buffer> {
    const res = await this.#send({ method: 'GET', target: this.#repoPath(`blobs/${digest}`), follow: true });
    if (res.status !== 200) throw this.#failure(res, `blob ${digest}`);
    const actual = sha256Digest(res.body);
    if (actual !== digest) {
      throw new NoderelError('EREGISTRY', `${this.#where()}: blob ${digest} arrived with digest ${actual} (${res.body.length} bytes)`, { hint: 'the registry or a proxy altered it; try again' });
    }
    return res.body;
  }

  /** HEAD of a blob: is it in this repository? */
  async hasBlob(digest: string): Promise<boolean> {
    const res = await this.#send({ method: 'HEAD', target: this.#repoPath(`blobs/${digest}`), follow: true });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw this.#failure(res, `blob ${digest}`);
  }

  /** Mounts a blob from another repository of this registry; false when the registry declined (upload cancelled). */
  async mountBlob(digest: string, fromRepository: string): Promise<boolean> {
    const started = await this.#startUpload(digest, fromRepository);
    if (started.mounted) return true;
    await this.#send({ method: 'DELETE', target: started.location }).catch(() => undefined);
    return false;
  }

  /** Pushes a blob unless present: HEAD, then a mount when `mountFrom` is given, else POST + monolithic PUT. */
  async pushBlob(digest: string, data: Buffer, opts: { mountFrom?: string } = {}): Promise<{ uploaded: number }> {
    if (sha256Digest(data) !== digest) throw new Error(`pushBlob: data does not match ${digest}`);
    if (await this.hasBlob(digest)) return { uploaded: 0 };
    const started = await this.#startUpload(digest, opts.mountFrom);
    if (started.mounted) return { uploaded: 0 };
    // the Location's own query (upload state) is kept byte for byte
    const target = `${started.location}${started.location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
    const res = await this.#send({
      method: 'PUT',
      target,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(data.length) },
      body: data,
    });
    if (res.status !== 201 && res.status !== 204) throw this.#failure(res, `blob ${digest} upload`);
    this.bytesUploaded += data.length;
    return { uploaded: data.length };
  }

  /** Stores a manifest or index under a tag or digest; returns its digest. */
  async putManifest(reference: string, mediaType: string, body: Buffer): Promise<string> {
    const res = await this.#send({
      method: 'PUT',
      target: this.#repoPath(`manifests/${reference}`),
      headers: { 'Content-Type': mediaType, 'Content-Length': String(body.length) },
      body,
    });
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw this.#failure(res, `manifest ${reference}`);
    const digest = sha256Digest(body);
    const said = headerValue(res.headers['docker-content-digest']);
    if (said !== undefined && said.startsWith('sha256:') && said !== digest) {
      throw new NoderelError('EREGISTRY', `${this.#where()}: stored manifest ${reference} as ${said}, but its digest is ${digest}`);
    }
    return digest;
  }

  /** POST an upload (with `mount`/`from` when mounting): 201 mounted, 202 an upload URL. */
  async #startUpload(digest: string, mountFrom?: string): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const query = mountFrom !== undefined ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}` : '';
    const res = await this.#send({
      method: 'POST',
      target: this.#repoPath(`blobs/uploads/${query}`),
      headers: { 'Content-Length': '0' },
      extraScopes: mountFrom !== undefined ? [`repository:${mountFrom}:pull`] : [],
    });
    if (res.status === 201 && mountFrom !== undefined) return { mounted: true };
    const location = headerValue(res.headers.location);
    if (res.status !== 202 || location === undefined) {
      throw this.#failure(res, `blob ${digest} upload${res.status === 202 ? ' (no Location header)' : ''}`);
    }
    return { mounted: false, location: new URL(location, res.url).href };
  }

  /** One request with auth: anonymous (or a cached token) first, the challenge answered on a 401, retried once. */
  async #send(spec: RequestSpec): Promise<Response> {
    const scopes = [`repository:${this.repository}:${this.#actions}`, ...(spec.extraScopes ?? [])];
    // a known Bearer challenge: get the token first, rather than sending a body to be refused
    if (this.#challenge?.scheme === 'bearer' && !this.#tokens.has(scopes.join(' '))) await this.#fetchToken(this.#challenge, scopes);
    let res = await this.#request(spec, this.#authorization(scopes));
    if (res.status !== 401) return this.#checkForbidden(res);
    const challenge = parseChallenge(headerValue(res.headers['www-authenticate']) ?? '');
    if (challenge === undefined || (challenge.scheme !== 'bearer' && challenge.scheme !== 'basic')) {
      throw new NoderelError('EREGISTRYAUTH', `${this.#where()}: 401 with ${challenge ? `an unsupported ${challenge.scheme} challenge` : 'no WWW-Authenticate challenge'}`);
    }
    this.#challenge = challenge;
    if (challenge.scheme === 'bearer') await this.#fetchToken(challenge, scopes);
    else if (!this.#basic()) throw this.#authError('no credentials were found');
    res = await this.#request(spec, this.#authorization(scopes));
    if (res.status === 401) {
      const detail = registryErrorText(res);
      throw this.#authError(`the registry refused the ${challenge.scheme === 'bearer' ? 'token it was given' : 'credentials'}${detail ? ` (${detail})` : ''}`);
    }
    return this.#checkForbidden(res);
  }

  #checkForbidden(res: Response): Response {
    if (res.status === 403) throw this.#authError(`access denied${registryErrorText(res) ? ` (${registryErrorText(res)})` : ''}`);
    return res;
  }

  #authorization(scopes: string[]): string | undefined {
    if (this.#challenge?.scheme === 'basic') return this.#basic();
    const token = this.#tokens.get(scopes.join(' '));
    return token === undefined ? undefined : `Bearer ${token}`;
  }

  #creds(): RegistryCredentials | undefined {
    if (!this.#credentialsLooked) {
      this.#credentials = findCredentials(this.registry, this.#env) ?? null;
      this.#credentialsLooked = true;
    }
    return this.#credentials ?? undefined;
  }

  #basic(): string | undefined {
    const c = this.#creds();
    if (c?.username === undefined || c.password === undefined) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  }

  /** GET the realm with service and scopes (Basic auth when there are credentials; an identity token is POSTed). */
  async #fetchToken(challenge: Challenge, scopes: string[]): Promise<void> {
    const realm = challenge.params.realm;
    if (!realm) throw new NoderelError('EREGISTRYAUTH', `${this.#where()}: the Bearer challenge names no realm`);
    const url = new URL(realm);
    const creds = this.#creds();
    let res: Response;
    if (creds?.identityToken !== undefined) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', client_id: USER_AGENT, refresh_token: creds.identityToken });
      if (challenge.params.service) form.set('service', challenge.params.service);
      form.set('scope', scopes.join(' '));
      const body = Buffer.from(form.toString());
      res = await this.#request({ method: 'POST', target: url.href, body, headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': String(body.length) } }, undefined);
    } else {
      if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      res = await this.#request({ method: 'GET', target: url.href, follow: true }, this.#basic());
    }
    if (res.status === 401 || res.status === 403) throw this.#authError(`the token service ${url.origin}${url.pathname} refused ${creds ? 'the credentials' : 'anonymous access'}`);
    if (res.status !== 200) throw this.#failure(res, `token from ${url.origin}${url.pathname}`);
    let doc: { token?: unknown; access_token?: unknown };
    try {
      doc = JSON.parse(res.body.toString('utf8')) as typeof doc;
    } catch {
      throw new NoderelError('EREGISTRYAUTH', `${this.#where()}: the token service ${url.origin}${url.pathname} answered no JSON`);
    }
    const token = typeof doc.token === 'string' && doc.token ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
    if (!token) throw new NoderelError('EREGISTRYAUTH', `${this.#where()}: the token service ${url.origin}${url.pathname} answered no token`);
    this.#tokens.set(scopes.join(' '), token);
  }

  /** One HTTP exchange, following redirects when asked (Authorization dropped when the host changes). */
  async #request(spec: RequestSpec, authorization: string | undefined): Promise<Response> {
    let url = new URL(spec.target, this.#base);
    const host = url.host;
    for (let hops = 0; ; hops++) {
      const headers: Record<string, string> = { 'User-Agent': USER_AGENT, ...spec.headers };
      if (authorization !== undefined && url.host === host) headers.Authorization = authorization;
      const res = await this.#exchange(spec.method, url, headers, spec.body);
      const location = headerValue(res.headers.location);
      if (!spec.follow || ![301, 302, 303, 307, 308].includes(res.status) || location === undefined) return res;
      if (hops >= 10) throw new NoderelError('EREGISTRY', `${this.#where()}: more than 10 redirects from ${spec.target}`);
      url = new URL(location, url);
    }
  }

  #exchange(method: string, url: URL, headers: Record<string, string>, body: Buffer | undefined): Promise<Response> {
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), url }));
        res.on('error', (err) => reject(this.#networkError(err, url)));
      });
      req.setTimeout(this.#timeoutMs, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(this.#networkError(err, url)));
      req.end(body);
    });
  }

  #networkError(err: Error, url: URL): NoderelError {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' ? 'host not found' : code ?? err.message;
    const hint =
      url.protocol === 'https:' && /CERT|SELF_SIGNED|UNABLE_TO/.test(code ?? '')
        ? `trust its CA with NODE_EXTRA_CA_CERTS, or list ${this.registry} in ${INSECURE_ENV} if it speaks plain HTTP`
        : 'check the registry address and that it is running';
    return new NoderelError('EREGISTRY', `cannot reach ${url.origin}${url.pathname} (${what})`, { hint, cause: err });
  }

  #where(): string {
    return `registry ${this.registry}, repository ${this.repository}`;
  }

  #authError(why: string): NoderelError {
    const c = this.#credentialsLooked ? this.#credentials : undefined;
    const used = c ? `credentials from ${c.source}` : 'no credentials';
    return new NoderelError('EREGISTRYAUTH', `${this.#where()}: not authorized, ${why} (${used})`, {
      hint: `credentials are read from ${credentialSources(this.#env)}`,
    });
  }

  #failure(res: Response, what: string): NoderelError {
    const detail = registryErrorText(res) ?? `HTTP ${res.status}`;
    const hint = res.status === 404 ? 'check the image reference' : undefined;
    return new NoderelError('EREGISTRY', `${this.#where()}: ${what}: ${detail}`, hint ? { hint } : {});
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** `CODE: message` of the first of `{"errors":[{code,message}]}`, on one line. */
function registryErrorText(res: Response): string | undefined {
  try {
    const doc = JSON.parse(res.body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const e = doc.errors?.[0];
    if (!e) return undefined;
    const text = [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(': ');
    return text ? `${text.replace(/\s+/g, ' ')} (HTTP ${res.status})` : undefined;
  } catch {
    return undefined;
  }
}
