/**
 * Redis key names of the auth layer, built in one place like src/queue/keys.ts (same prefix, so
 * one `--prefix` separates whole Jiffy installations sharing a Redis).
 */
export interface AuthKeys {
  /** Set of every API key id (revoked ones included until deleted). */
  index(): string;
  /** Hash: one API key's record (name, scope, functions, sha256 of the secret, times). */
  apiKey(id: string): string;
}

/** Builds the auth key set for one prefix (default "jiffy"). */
export function createAuthKeys(prefix = 'jiffy'): AuthKeys {
  return {
    index: () => `${prefix}:auth:keys`,
    apiKey: (id) => `${prefix}:auth:key:${id}`,
  };
}
