import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { customAlphabet } from 'nanoid';
import { JiffyError } from '../errors.js';
import { NAME_RE } from '../functions/spec.js';
import type { AuthKeys } from './keys.js';

/** What a key may do: `admin` = deploy/remove/list/keys + invoke; `invoke` = invoke and read results. */
export const SCOPES = ['admin', 'invoke'] as const;
export type Scope = (typeof SCOPES)[number];

/** An API key as stored and listed (never includes the secret). */
export interface ApiKey {
  id: string;
  name: string;
  scope: Scope;
  /** Functions this key may invoke; empty = every function. */
  functions: string[];
  createdAt: string;
  revokedAt?: string;
}

/** A newly created key: the record plus the bearer token, shown once and never stored. */
export interface CreatedKey {
  key: ApiKey;
  token: string;
}

const ID_LEN = 12;
const newId = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', ID_LEN);
const TOKEN_RE = new RegExp(`^jfy_([0-9a-z]{${ID_LEN}})_([A-Za-z0-9_-]{43})$`);

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * API keys in Redis. A token is `jfy_<id>_<secret>`: the id finds the record in one HGETALL and
 * only sha256(secret) is stored, so a Redis dump does not leak usable tokens. The secret is 256
 * random bits, which is why a fast hash (not a password KDF) is enough.
 */
export class ApiKeyStore {
  constructor(private readonly redis: Redis, private readonly keys: AuthKeys) {}

  /** Creates a key; the returned token is the only copy of its secret. */
  async create(o: { scope?: Scope; functions?: string[]; name?: string } = {}): Promise<CreatedKey> {
    const scope = o.scope ?? 'invoke';
    if (!SCOPES.includes(scope)) throw new JiffyError('invalid_argument', `unknown key scope ${JSON.stringify(scope)}: use admin or invoke`);
    const functions = [...new Set(o.functions ?? [])];
    for (const f of functions) {
      if (!NAME_RE.test(f)) throw new JiffyError('invalid_argument', `--functions: ${JSON.stringify(f)} is not a function name (1-63 of a-z 0-9 _ -)`);
    }
    const id = newId();
    const secret = randomBytes(32).toString('base64url');
    const key: ApiKey = { id, name: o.name ?? '', scope, functions, createdAt: new Date().toISOString() };
    await this.redis
      .multi()
      .hset(this.keys.apiKey(id), { name: key.name, scope, functions: JSON.stringify(functions), createdAt: key.createdAt, sha256: sha256(secret).toString('hex') })
      .sadd(this.keys.index(), id)
      .exec();
    return { key, token: `jfy_${id}_${secret}` };
  }

  /** Every key, oldest first. */
  async list(): Promise<ApiKey[]> {
    const ids = await this.redis.smembers(this.keys.index());
    const out: ApiKey[] = [];
    for (const id of ids) {
      const k = await this.get(id).catch(() => undefined);
      if (k) out.push(k);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** One key by id; throws not_found. */
  async get(id: string): Promise<ApiKey> {
    const h = await this.redis.hgetall(this.keys.apiKey(id));
    if (!h.scope) throw new JiffyError('not_found', `API key ${id} does not exist; list keys with: jiffy keys ls`);
    return fromHash(id, h);
  }

  /** Revokes a key at once (its record stays, marked revoked, for `keys ls`). */
  async revoke(id: string): Promise<ApiKey> {
    const k = await this.get(id);
    if (k.revokedAt) return k;
    k.revokedAt = new Date().toISOString();
    await this.redis.hset(this.keys.apiKey(id), 'revokedAt', k.revokedAt);
    return k;
  }

  /** The live key a bearer token belongs to; throws unauthenticated saying why not. */
  async verify(token: string): Promise<ApiKey> {
    const m = TOKEN_RE.exec(token);
    if (!m) throw new JiffyError('unauthenticated', 'malformed API key: expected a token like jfy_<id>_<secret>; create one with: jiffy keys create');
    const h = await this.redis.hgetall(this.keys.apiKey(m[1]!));
    const stored = h.sha256 ? Buffer.from(h.sha256, 'hex') : Buffer.alloc(32);
    // Compare even for unknown ids so timing does not tell which ids exist.
    const same = timingSafeEqual(stored.length === 32 ? stored : Buffer.alloc(32), sha256(m[2]!)) && !!h.sha256;
    if (!same) throw new JiffyError('unauthenticated', 'unknown API key; create one with: jiffy keys create');
    const key = fromHash(m[1]!, h);
    if (key.revokedAt) throw new JiffyError('unauthenticated', `API key ${key.id} was revoked at ${key.revokedAt}; create a new one with: jiffy keys create`);
    return key;
  }
}

function fromHash(id: string, h: Record<string, string>): ApiKey {
  const k: ApiKey = { id, name: h.name ?? '', scope: h.scope as Scope, functions: JSON.parse(h.functions ?? '[]') as string[], createdAt: h.createdAt ?? '' };
  if (h.revokedAt) k.revokedAt = h.revokedAt;
  return k;
}
