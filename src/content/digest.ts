import { invalid } from '../errors.js';

/** Hex part of a `sha256:<64 hex>` digest; anything else is refused (it becomes a file name). */
export function digestHex(digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw invalid(`invalid digest "${digest}": expected sha256: followed by 64 lowercase hex digits`);
  return m[1];
}

/** True when `digest` is a well-formed sha256 digest. */
export function isSha256Digest(digest: string): boolean {
  return /^sha256:[a-f0-9]{64}$/.test(digest);
}
