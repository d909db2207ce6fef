import type { Command } from 'commander';

/**
 * Every command group registers itself here, one line each. A group lives in its own file
 * (./images.ts, ./containers.ts, ...) and exports `register(program)`.
 */
const groups: Array<() => Promise<{ register: (p: Command) => void }>> = [
  // add one line per group, e.g. () => import('./images.js'),
  () => import('./functions.js'),
  () => import('./up.js'),
  () => import('./build.js'),
  () => import('./registry.js'),
  () => import('./images.js'),
  () => import('./containers.js'),
  () => import('./keys.js'),
];

export function registerAll(program: Command): void {
  // Registration is synchronous for commander; groups are imported eagerly at startup.
  for (const g of loaded) g.register(program);
}

const loaded = await Promise.all(groups.map((g) => g()));
