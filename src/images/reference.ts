import { invalid } from '../errors.js';

/**
 * An image reference, Docker's grammar: `[registry/]repository[:tag][@digest]`.
 * The registry is the first path component when it looks like a host (has a `.` or `:`, or is
 * `localhost`); Jiffy does not invent `docker.io/library/` for bare names — local names stay local.
 */
export interface Reference {
  registry?: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;

/** Parse `s`; the tag defaults to `latest` unless a digest is given. Invalid input → invalid_argument. */
export function parseReference(s: string): Reference {
  const bad = (why: string) =>
    invalid(`invalid image reference "${s}": ${why} (expected NAME[:TAG][@sha256:DIGEST], e.g. busybox:latest)`);
  if (!s || s.length > 512) throw bad('empty or too long');
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`bad digest "${digest}"`);
    if (digest.startsWith('sha256:') && !/^sha256:[a-f0-9]{64}$/.test(digest)) throw bad('sha256 digest must be 64 hex digits');
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`bad tag "${tag}"`);
  }
  const parts = rest.split('/');
  let registry: string | undefined;
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) {
    registry = parts.shift();
    if (!HOST.test(registry!)) throw bad(`bad registry "${registry}"`);
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    throw bad('repository must be lowercase letters, digits and separators (. _ __ -) between / components');
  }
  const repository = parts.join('/');
  if (!tag && !digest) tag = 'latest';
  return { ...(registry ? { registry } : {}), repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** The repository with its registry, e.g. `localhost:5000/ns/repo`. */
export function formatName(r: Reference): string {
  return r.registry ? `${r.registry}/${r.repository}` : r.repository;
}

/** `registry/repository:tag@digest`, omitting the parts that are absent. */
export function formatReference(r: Reference): string {
  let s = formatName(r);
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

/** True when `s` is a full `sha256:<64 hex>` digest. */
export function isDigest(s: string): boolean {
  return /^sha256:[a-f0-9]{64}$/.test(s);
}
