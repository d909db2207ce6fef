import { FunctionRegistry } from '../functions/registry.js';
import type { FunctionVersion } from '../functions/spec.js';

/**
 * Gateway-side lookups of NAME / NAME@N. Versions are immutable, so they are cached for good;
 * "which version is newest" is cached briefly and dropped on the control channel's
 * published/remove notices, so a deploy through any gateway is seen at once everywhere.
 */
export class FunctionCache {
  private readonly versions = new Map<string, FunctionVersion>();
  private readonly latest = new Map<string, { v: number; at: number }>();

  constructor(private readonly registry: FunctionRegistry, private readonly latestTtlMs = 5000) {}

  async get(name: string, version?: number): Promise<FunctionVersion> {
    const v = version ?? this.cachedLatest(name);
    if (v !== undefined) {
      const hit = this.versions.get(`${name}@${v}`);
      if (hit) return hit;
    }
    const fn = await this.registry.get(name, v);
    this.versions.set(`${name}@${fn.version}`, fn);
    if (version === undefined) this.latest.set(name, { v: fn.version, at: Date.now() });
    return fn;
  }

  private cachedLatest(name: string): number | undefined {
    const l = this.latest.get(name);
    return l && Date.now() - l.at < this.latestTtlMs ? l.v : undefined;
  }

  /** Forgets which version of `name` is newest (after a deploy or remove). */
  invalidate(name: string): void {
    this.latest.delete(name);
  }

  /** Forgets everything cached about `name`. */
  forget(name: string): void {
    this.latest.delete(name);
    for (const k of this.versions.keys()) if (k.startsWith(`${name}@`)) this.versions.delete(k);
  }
}
