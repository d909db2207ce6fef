import fs from 'node:fs/promises';
import path from 'node:path';
import { globToRegExp } from './copy-sources.js';

/**
 * `.dockerignore` in the context root: one pattern per line, `#` comments, `!` re-includes, the
 * last matching line wins; a pattern that matches a directory excludes everything under it.
 * Returns a predicate over context-relative paths (`dir/file`).
 */
export async function loadDockerignore(contextDir: string): Promise<(rel: string) => boolean> {
  const text = await fs.readFile(path.join(contextDir, '.dockerignore'), 'utf8').catch(() => '');
  return dockerignoreMatcher(text);
}

/** The predicate for `.dockerignore` text (exported for tests). */
export function dockerignoreMatcher(text: string): (rel: string) => boolean {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pat = path.posix.normalize((negate ? l.slice(1) : l).trim().replace(/^\/+/, '')).replace(/\/+$/, '');
      return { negate, re: globToRegExp(pat) };
    });
  if (rules.length === 0) return () => false;
  return (rel: string) => {
    const parts = rel.split('/');
    let ignored = false;
    for (const r of rules) {
      // A pattern matches the path itself or any of its parent directories.
      for (let n = 1; n <= parts.length; n++) {
        if (r.re.test(parts.slice(0, n).join('/'))) {
          ignored = !r.negate;
          break;
        }
      }
    }
    return ignored;
  };
}
