import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { invalid } from '../../errors.js';
import { defaultRoot } from '../../paths.js';
import { ImageStore } from '../../images/store.js';
import { buildImage } from '../../build/builder.js';
import { RUNTIME_NAMES, buildRuntimeImage, ensureRuntimeImage, resolveImage, type RuntimeName } from '../../build/runtime-images.js';
import { runStepHooks } from '../../build/run-step.js';
import { createProgressRenderer } from '../progress.js';

/** `jiffy build` (Dockerfile subset) and `jiffy build-runtime` (the offline runtime images). */
export function register(program: Command): void {
  program
    .command('build')
    .description('build an image from a Dockerfile (FROM, COPY, ADD, RUN, ENV, ARG, WORKDIR, CMD, ENTRYPOINT, USER, LABEL, EXPOSE)')
    .argument('<context>', 'build context directory')
    .option('-t, --tag <name>', 'name:tag for the image (repeatable)', collect, [] as string[])
    .option('-f, --file <path>', 'Dockerfile (default CONTEXT/Dockerfile)')
    .option('--build-arg <k=v>', 'set a build-time variable (repeatable)', collect, [] as string[])
    .option('--no-cache', 'do not use the build cache')
    .option('-q, --quiet', 'print only the image id')
    .action(async (context: string, o: { tag: string[]; file?: string; buildArg: string[]; cache: boolean; quiet?: boolean }) => {
      const store = await ImageStore.open(defaultRoot());
      const file = o.file ?? path.join(context, 'Dockerfile');
      const dockerfile = await fs.readFile(file, 'utf8').catch((e) => {
        throw invalid(`cannot read Dockerfile ${file}: ${(e as Error).message}; pass -f PATH`, e);
      });
      const progress = o.quiet ? undefined : createProgressRenderer(process.stderr);
      try {
        const { image } = await buildImage(store, {
          contextDir: context,
          dockerfile,
          tags: o.tag,
          buildArgs: parseBuildArgs(o.buildArg),
          noCache: !o.cache,
          resolveBase: (ref) => resolveImage(store, ref),
          ...runStepHooks(store),
          log: o.quiet ? undefined : (l) => process.stdout.write(`${l}\n`),
          onProgress: progress,
        });
        progress?.close();
        if (o.quiet) console.log(image.id);
        else {
          console.log(`Successfully built ${image.id.slice(7, 19)}`);
          for (const t of image.refs) console.log(`Successfully tagged ${t}`);
        }
      } finally {
        progress?.close();
      }
    });

  program
    .command('build-runtime')
    .description(`build the runtime images offline from this machine's files (${RUNTIME_NAMES.join(', ')}, or all)`)
    .argument('[name]', 'busybox | node | python | all', 'all')
    .option('--force', 'rebuild even when the image is up to date')
    .action(async (name: string, o: { force?: boolean }) => {
      const names = name === 'all' ? RUNTIME_NAMES : [name as RuntimeName];
      if (!names.every((n) => RUNTIME_NAMES.includes(n))) throw invalid(`unknown runtime image "${name}"; choose ${RUNTIME_NAMES.join(', ')} or all`);
      const store = await ImageStore.open(defaultRoot());
      const progress = createProgressRenderer(process.stderr);
      try {
        for (const n of names) {
          const log = (l: string) => process.stdout.write(`${l}\n`);
          const img = o.force ? await buildRuntimeImage(store, n, { log, onProgress: progress }) : await ensureRuntimeImage(store, n, progress);
          console.log(`${img.refs.join(', ')}: ${img.id.slice(7, 19)} (${img.layers.length} layers)`);
        }
      } finally {
        progress.close();
      }
    });
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function parseBuildArgs(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    if (eq > 0) out[kv.slice(0, eq)] = kv.slice(eq + 1);
    else if (process.env[kv] !== undefined) out[kv] = process.env[kv]!;
    else throw invalid(`--build-arg ${kv}: expected NAME=VALUE (or NAME set in the environment)`);
  }
  return out;
}
