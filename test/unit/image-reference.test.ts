// Image references normalized as Docker does, and registry credentials found where docker finds
// them (environment, then config.json: credHelpers, credsStore, auths), with a fake credential
// helper first on PATH.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoderelError } from '../../src/errors.js';
import { findCredentials } from '../../src/image/credentials.js';
import { formatImageRef, parseImageRef, type ImageRef } from '../../src/image/reference.js';
import { parseChallenge, RegistryClient, registryUsesHttp } from '../../src/image/registry.js';
import { thrown } from '../helpers/errors.js';
import { tempDir } from '../helpers/project.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('parseImageRef', () => {
  const table: [string, ImageRef][] = [
    ['nginx', { registry: 'registry-1.docker.io', repository: 'library/nginx', tag: 'latest' }],
    ['nginx:1.25', { registry: 'registry-1.docker.io', repository: 'library/nginx', tag: '1.25' }],
    ['bitnami/redis:7', { registry: 'registry-1.docker.io', repository: 'bitnami/redis', tag: '7' }],
    ['docker.io/nginx', { registry: 'registry-1.docker.io', repository: 'library/nginx', tag: 'latest' }],
    ['docker.io/library/debian:bookworm-slim', { registry: 'registry-1.docker.io', repository: 'library/debian', tag: 'bookworm-slim' }],
    ['index.docker.io/acme/app', { registry: 'registry-1.docker.io', repository: 'acme/app', tag: 'latest' }],
    ['ghcr.io/acme/shop:1.2.0', { registry: 'ghcr.io', repository: 'acme/shop', tag: '1.2.0' }],
    ['host:5000/a/b:tag', { registry: 'host:5000', repository: 'a/b', tag: 'tag' }],
    ['localhost/app', { registry: 'localhost', repository: 'app', tag: 'latest' }],
    ['localhost:5000/app:v1', { registry: 'localhost:5000', repository: 'app', tag: 'v1' }],
    ['127.0.0.1:5000/x/y/z', { registry: '127.0.0.1:5000', repository: 'x/y/z', tag: 'latest' }],
    ['[::1]:5000/app:v1', { registry: '[::1]:5000', repository: 'app', tag: 'v1' }],
    [`nginx@${D}`, { registry: 'registry-1.docker.io', repository: 'library/nginx', digest: D }],
    [`ghcr.io/a/b:1@${D}`, { registry: 'ghcr.io', repository: 'a/b', tag: '1', digest: D }],
    ['my_org/my-app.web', { registry: 'registry-1.docker.io', repository: 'my_org/my-app.web', tag: 'latest' }],
    ['localhost:5000', { registry: 'registry-1.docker.io', repository: 'library/localhost', tag: '5000' }],
  ];
  it.each(table)('%s', (s, want) => {
    expect(parseImageRef(s)).toEqual(want);
  });

  it('formats back to a reference that parses to the same thing', () => {
    expect(formatImageRef(parseImageRef('nginx'))).toBe('docker.io/library/nginx:latest');
    expect(formatImageRef(parseImageRef(`host:5000/a/b:t@${D}`))).toBe(`host:5000/a/b:t@${D}`);
    for (const [s] of table) expect(parseImageRef(formatImageRef(parseImageRef(s)))).toEqual(parseImageRef(s));
  });

  it.each([
    ['', 'empty'],
    ['Nginx', 'repository "Nginx" is not valid'],
    ['ghcr.io/Acme/app', 'repository "Acme/app" is not valid'],
    ['nginx:', 'the tag "" is not valid'],
    ['nginx:-x', 'the tag "-x" is not valid'],
    ['nginx@sha256:abc', 'the digest "sha256:abc" is not sha256: and 64 lowercase hex digits'],
    ['ghcr.io/', 'no repository name'],
    ['a//b', 'repository "a//b" is not valid'],
    [' nginx', 'surrounding whitespace'],
    ['bad_host.io:x:y/app', 'is not a host[:port]'],
  ])('%j is EIMAGEREF naming it and the expected form', (s, why) => {
    const err = thrown(() => parseImageRef(s), NoderelError);
    expect(err.code).toBe('EIMAGEREF');
    expect(err.message).toContain(`image reference ${JSON.stringify(s)}`);
    expect(err.message).toContain(why);
    expect(err.hint).toContain('[registry[:port]/]repository[:tag][@sha256:');
    expect(err.format()).not.toContain('\n');
  });
});

describe('registry scheme and challenges', () => {
  it('plain HTTP only for loopback hosts and NODEREL_INSECURE_REGISTRIES', () => {
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:5000']) expect(registryUsesHttp(h, {})).toBe(true);
    for (const h of ['ghcr.io', 'registry-1.docker.io', '10.0.0.1:5000', '127.example.com']) expect(registryUsesHttp(h, {})).toBe(false);
    const env = { NODEREL_INSECURE_REGISTRIES: 'reg.lan:5000, build.internal' };
    expect(registryUsesHttp('reg.lan:5000', env)).toBe(true);
    expect(registryUsesHttp('reg.lan:6000', env)).toBe(false);
    expect(registryUsesHttp('build.internal:443', env)).toBe(true);
    expect(new RegistryClient('ghcr.io', 'a/b', { env: {} }).baseUrl).toBe('https://ghcr.io');
    expect(new RegistryClient('reg.lan:5000', 'a/b', { env }).baseUrl).toBe('http://reg.lan:5000');
    expect(new RegistryClient('localhost:5000', 'a/b', { env: {} }).baseUrl).toBe('http://localhost:5000');
  });

  it('parses Bearer and Basic challenges', () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/nginx:pull,push' },
    });
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: { realm: 'Registry Realm' } });
  });
});

describe('findCredentials', () => {
  let t: { dir: string; cleanup: () => void };
  let binDir: string;
  beforeAll(() => {
    t = tempDir('noderel-creds-');
    binDir = path.join(t.dir, 'bin');
    fs.mkdirSync(binDir);
    // a credential helper: reads the server on stdin, answers for two of them, "not found" otherwise
    fs.writeFileSync(
      path.join(binDir, 'docker-credential-test'),
      [
        '#!/bin/sh',
        '[ "$1" = get ] || exit 2',
        'read -r server',
        'case "$server" in',
        '  helped.example.com) printf \'{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pass"}\\n\' "$server" ;;',
        '  https://index.docker.io/v1/) printf \'{"Username":"<token>","Secret":"refresh-me"}\\n\' ;;',
        '  *) echo "credentials not found in native keychain"; exit 1 ;;',
        'esac',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  });
  afterAll(() => t?.cleanup());

  /** An env whose docker config is `config` (written to a fresh DOCKER_CONFIG dir). */
  function withConfig(name: string, config: unknown, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const dir = path.join(t.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
    return { PATH: `${binDir}:${process.env.PATH}`, HOME: t.dir, DOCKER_CONFIG: dir, ...extra };
  }

  it('NODEREL_REGISTRY_USERNAME/PASSWORD come first, for every registry', () => {
    const env = withConfig('env-first', { auths: { 'ghcr.io': { username: 'u', password: 'p' } } }, { NODEREL_REGISTRY_USERNAME: 'ci', NODEREL_REGISTRY_PASSWORD: 'tok' });
    expect(findCredentials('ghcr.io', env)).toEqual({ username: 'ci', password: 'tok', source: 'NODEREL_REGISTRY_USERNAME/NODEREL_REGISTRY_PASSWORD' });
    expect(findCredentials('elsewhere.io', env)?.username).toBe('ci');
  });

  it('auths: base64 auth, username/password, identitytoken, Docker Hub under https://index.docker.io/v1/', () => {
    const env = withConfig('auths', {
      auths: {
        'ghcr.io': { auth: Buffer.from('octo:pa:ss').toString('base64') },
        'https://quay.io/v1/': { username: 'q', password: 'qp' },
        'https://index.docker.io/v1/': { auth: Buffer.from('hubber:hubpass').toString('base64') },
        'id.example.com': { identitytoken: 'idtok' },
      },
    });
    const file = path.join(t.dir, 'auths', 'config.json');
    expect(findCredentials('ghcr.io', env)).toEqual({ username: 'octo', password: 'pa:ss', source: `auths["ghcr.io"] in ${file}` });
    expect(findCredentials('quay.io', env)).toMatchObject({ username: 'q', password: 'qp' });
    expect(findCredentials('registry-1.docker.io', env)).toMatchObject({ username: 'hubber', password: 'hubpass' });
    expect(findCredentials('id.example.com', env)).toMatchObject({ identityToken: 'idtok' });
    expect(findCredentials('nowhere.example.com', env)).toBeUndefined();
  });

  it('credHelpers and credsStore run docker-credential-<name> get', () => {
    const env = withConfig('helpers', { credHelpers: { 'helped.example.com': 'test', 'other.example.com': 'test' }, auths: { 'other.example.com': { username: 'a', password: 'b' } } });
    expect(findCredentials('helped.example.com', env)).toMatchObject({ username: 'helper-user', password: 'helper-pass' });
    expect(findCredentials('helped.example.com', env)?.source).toContain('docker-credential-test');
    // the helper does not know it: no credentials (docker does not fall back to auths for a credHelpers host)
    expect(findCredentials('other.example.com', env)).toBeUndefined();
    const store = withConfig('store', { credsStore: 'test', auths: { 'plain.example.com': { username: 'a', password: 'b' } } });
    expect(findCredentials('registry-1.docker.io', store)).toMatchObject({ identityToken: 'refresh-me' });
    expect(findCredentials('plain.example.com', store)).toMatchObject({ username: 'a', password: 'b' });
  });

  it('a missing helper binary is one line naming it', () => {
    const env = withConfig('missing', { credHelpers: { 'ghcr.io': 'nosuchhelper' } });
    const err = thrown(() => findCredentials('ghcr.io', env), NoderelError);
    expect(err.code).toBe('ECREDENTIALS');
    expect(err.message).toBe(`docker-credential-nosuchhelper (named by credHelpers in ${path.join(t.dir, 'missing', 'config.json')}) is not on PATH`);
    expect(err.format()).not.toContain('\n');
  });

  it('a malformed config.json is one line naming the file', () => {
    const env = withConfig('malformed', '{"auths": {');
    const err = thrown(() => findCredentials('ghcr.io', env), NoderelError);
    expect(err.code).toBe('ECREDENTIALS');
    expect(err.message).toContain(`${path.join(t.dir, 'malformed', 'config.json')}: not valid JSON`);
    expect(err.format()).not.toContain('\n');
  });

  it('no config file: anonymous', () => {
    expect(findCredentials('ghcr.io', { PATH: process.env.PATH, HOME: t.dir, DOCKER_CONFIG: path.join(t.dir, 'none') })).toBeUndefined();
  });
});
