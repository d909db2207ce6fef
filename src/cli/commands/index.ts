import type { Command } from 'commander';

type Group = { register: (p: Command) => void };

/**
 * Every command group registers itself here: one entry per group file (./images.ts, ...), each
 * exporting `register(program)`, with the verbs it adds. Only the group that owns the verb on the
 * command line is imported, because importing every group (bullmq, hono, the image store...) costs
 * ~200 ms of startup that `jiffy run --rm IMAGE true` should not pay. An unknown verb, or help,
 * loads every group, so a verb missing from its list still works (just slower).
 */
const groups: Array<{ verbs: string[]; load: () => Promise<Group> }> = [
  { verbs: ['deploy', 'invoke', 'fn'], load: () => import('./functions.js') },
  { verbs: ['up', 'gateway', 'worker'], load: () => import('./up.js') },
  { verbs: ['build', 'build-runtime'], load: () => import('./build.js') },
  { verbs: ['pull', 'push', 'login', 'logout'], load: () => import('./registry.js') },
  {
    verbs: ['images', 'history', 'inspect', 'tag', 'rmi', 'prune', 'load', 'save'],
    load: () => import('./images.js'),
  },
  {
    verbs: ['run', 'create', 'start', 'stop', 'restart', 'kill', 'rm', 'pause', 'unpause', 'wait', 'ps',
      'logs', 'top', 'diff', 'container', 'cp', 'exec', 'commit'],
    load: () => import('./containers.js'),
  },
  { verbs: ['sandbox'], load: () => import('./sandbox.js') },
  { verbs: ['keys'], load: () => import('./keys.js') },
];

/** Global options that take a value, so their value is not mistaken for the verb. */
const valueOptions = new Set(['--root']);

/** The verb: the first argument that is neither an option nor a global option's value. */
export function findVerb(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (valueOptions.has(a)) i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** Registers the groups needed for `args` (argv without node and script). */
export async function registerAll(program: Command, args: string[]): Promise<void> {
  const verb = findVerb(args);
  const owner = verb === undefined ? undefined : groups.find((g) => g.verbs.includes(verb));
  const chosen = owner ? [owner] : groups;
  for (const g of await Promise.all(chosen.map((c) => c.load()))) g.register(program);
}
