/**
 * Image references as docker, ko and Jib read them: `[registry/]repository[:tag][@digest]`,
 * normalized the way Docker does (`nginx` is `registry-1.docker.io` / `library/nginx:latest`).
 * Pure; no I/O.
 */
import { NoderelError } from '../errors.js';

export interface ImageRef {
  /** `host[:port]` to talk to (`registry-1.docker.io` for Docker Hub). */
  registry: string;
  /** `library/nginx`, `team/app`. */
  repository: string;
  /** Set unless the reference names only a digest. */
  tag?: string;
  /** `sha256:<hex>` when given. */
  digest?: string;
}

/** Where Docker Hub's API is, and the names people write for it. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

const EXPECTED = '[registry[:port]/]repository[:tag][@sha256:<64 hex digits>], e.g. ghcr.io/acme/shop:1.2.0';
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$/;

function bad(s: string, why: string): NoderelError {
  return new NoderelError('EIMAGEREF', `image reference ${JSON.stringify(s)}: ${why}`, { hint: `write it as ${EXPECTED}` });
}

/** Is the first path component of a reference a registry host (Docker's rule)? */
function isRegistryComponent(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[');
}

/** Parses and normalizes an image reference; throws EIMAGEREF naming it and the expected form. */
export function parseImageRef(s: string): ImageRef {
  if (s.trim() !== s || s === '') throw bad(s, s === '' ? 'empty' : 'has surrounding whitespace');
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(s, `the digest ${JSON.stringify(digest)} is not sha256: and 64 lowercase hex digits`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(s, `the tag ${JSON.stringify(tag)} is not valid (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  const slash = rest.indexOf('/');
  let registry = DOCKER_HUB_REGISTRY;
  let repository = rest;
  if (slash >= 0 && isRegistryComponent(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!HOST.test(registry)) throw bad(s, `the registry ${JSON.stringify(registry)} is not a host[:port]`);
  }
  if (repository === '') throw bad(s, 'no repository name');
  for (const part of repository.split('/')) {
    if (!COMPONENT.test(part)) {
      throw bad(s, `the repository ${JSON.stringify(repository)} is not valid (lowercase letters, digits and . _ - between them, parts separated by /)`);
    }
  }
  if (repository.length > 255) throw bad(s, 'the repository name is longer than 255 characters');
  if (DOCKER_HUB_NAMES.has(registry)) {
    registry = DOCKER_HUB_REGISTRY;
    if (!repository.includes('/')) repository = `library/${repository}`;
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  return digest === undefined ? { registry, repository, tag } : tag === undefined ? { registry, repository, digest } : { registry, repository, tag, digest };
}

/** `registry/repository[:tag][@digest]`; Docker Hub written as `docker.io`. Parses back to the same ref. */
export function formatImageRef(ref: ImageRef): string {
  const registry = ref.registry === DOCKER_HUB_REGISTRY ? 'docker.io' : ref.registry;
  return `${registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** What to ask the registry's manifests endpoint for: the digest when there is one, else the tag. */
export function manifestReference(ref: ImageRef): string {
  return ref.digest ?? ref.tag ?? 'latest';
}
