import { JiffyError } from '../errors.js';
import type { Credentials } from './credentials.js';

/** One parsed `WWW-Authenticate` challenge: scheme plus its parameters (realm, service, scope…). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a `WWW-Authenticate` header (RFC 7235 auth-params, quoted or token values). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2])) !== null) {
    if (p[0] === '') break;
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  }
  return { scheme: m[1].toLowerCase(), params };
}

/** `Basic base64(user:password)`. */
export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/**
 * The Docker token flow: GET `realm?service=…&scope=…` (with basic credentials when we have
 * them, anonymous otherwise) and return the bearer token from `token` or `access_token`.
 */
export async function fetchBearerToken(ch: Challenge, scope: string, creds: Credentials | undefined, registry: string): Promise<string> {
  const realm = ch.params.realm;
  if (!realm) throw new JiffyError('unavailable', `registry ${registry} sent a Bearer challenge without a realm; it is misconfigured`);
  const url = new URL(realm);
  if (ch.params.service) url.searchParams.set('service', ch.params.service);
  for (const s of (ch.params.scope ?? scope).split(' ').filter(Boolean)) url.searchParams.append('scope', s);
  const headers: Record<string, string> = {};
  if (creds) headers.authorization = basicHeader(creds);
  let res: Response;
  try {
    res = await fetch(url, { headers });
  } catch (e) {
    throw new JiffyError('unavailable', `cannot reach the token service ${url.origin} of registry ${registry}: ${(e as Error).message}`, { cause: e });
  }
  if (res.status === 401 || res.status === 403) {
    throw new JiffyError('unauthenticated', `registry ${registry} refused ${creds ? `the credentials of user "${creds.username}"` : 'anonymous access'} for ${scope}; run \`jiffy login ${registry}\` or pass --user/--password`);
  }
  if (!res.ok) throw new JiffyError('unavailable', `token service ${url.origin} answered HTTP ${res.status} for ${scope}`);
  const body = (await res.json()) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new JiffyError('unavailable', `token service ${url.origin} returned no token for ${scope}`);
  return token;
}
