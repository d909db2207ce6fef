import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { JiffyError } from '../../errors.js';
import { deployQuery, gatewayFetch, gatewayUrl, tarDir } from '../../functions/client.js';
import { parseFunctionRef, RUNTIMES } from '../../functions/spec.js';
import { registerDeadLetterCommands } from '../../retries/cli.js';
import { parseBackoff } from '../../retries/spec.js';

/** `jiffy deploy`, `jiffy invoke`, `jiffy fn ls|info|rm|result`: clients of the gateway's HTTP API. */
export function register(program: Command): void {
  program
    .command('deploy')
    .description('deploy DIR as a new version of function NAME (through the gateway)')
    .argument('<name>', 'function name')
    .argument('<dir>', 'directory with the code (becomes /var/task)')
    .requiredOption('--runtime <runtime>', `one of ${RUNTIMES.join(', ')}`)
    .option('--handler <handler>', 'node: FILE.EXPORT (index.handler), python: FILE.FUNC (main.handler), exec: command (./handler)')
    .option('--memory <mb>', 'memory limit in MiB (256)')
    .option('--cpus <n>', 'CPU limit (1)')
    .option('--timeout <s>', 'per-invocation timeout in seconds (30)')
    .option('--env <k=v>', 'environment variable (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--concurrency <n>', 'invocations one instance serves at once (1)')
    .option('--min-warm <n>', 'instances kept warm (0)')
    .option('--max-instances <n>', 'instance cap; sync calls past it get 429 (10)')
    .option('--idle-timeout <s>', 'stop instances idle this long (300)')
    .option('--network <mode>', 'none (default) or host')
    .option('--queue <name>', 'invoke on every job of this named queue (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--schedule <cron>', "invoke on a cron schedule, e.g. '*/5 * * * *'")
    .option('--attempts <n>', 'tries per async or queue invocation before it becomes a dead letter (1)')
    .option('--backoff <spec>', 'wait between tries: fixed:MS or exponential:MS (exponential:1000)')
    .option('--url <url>', 'gateway URL (default $JIFFY_URL or http://127.0.0.1:8080)')
    .action(async (name: string, dir: string, o: Record<string, string | string[] | undefined>) => {
      const st = await fs.stat(dir).catch(() => null);
      if (!st?.isDirectory()) throw new JiffyError('invalid_argument', `${dir} is not a directory; pass the folder holding your function's code`);
      const env = Object.fromEntries((o.env as string[]).map((kv) => {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new JiffyError('invalid_argument', `--env ${kv}: expected K=V`);
        return [kv.slice(0, eq), kv.slice(eq + 1)];
      }));
      const q = deployQuery({ runtime: o.runtime as string, handler: o.handler as string, memoryMb: num(o.memory), cpus: num(o.cpus), timeoutS: num(o.timeout), concurrency: num(o.concurrency), minWarm: num(o.minWarm), maxInstances: num(o.maxInstances), idleTimeoutS: num(o.idleTimeout), network: o.network as 'none' | 'host' | undefined, env, queues: o.queue as string[], schedule: o.schedule as string | undefined, attempts: num(o.attempts), backoff: o.backoff ? parseBackoff(o.backoff as string) : undefined });
      const body = await tarDir(path.resolve(dir));
      const res = await gatewayFetch(gatewayUrl(o.url as string), `/v1/functions/${encodeURIComponent(name)}?${q}`, { method: 'PUT', headers: { 'content-type': 'application/x-tar' }, body: new Uint8Array(body) });
      const j = (await res.json()) as { name: string; version: number; image: { ref: string }; preparedOn: string[]; warning?: string };
      console.log(`deployed ${j.name}@${j.version} (image ${j.image.ref}; ready on ${j.preparedOn.length} worker(s))`);
      if (j.warning) console.error(`warning: ${j.warning}`);
    });

  program
    .command('invoke')
    .description('invoke function NAME or NAME@N with an event')
    .argument('<ref>', 'NAME or NAME@VERSION')
    .option('-d, --data <data>', 'event: JSON text, or @FILE to read it from a file (- for stdin)')
    .option('--async', 'queue it and print the invocation id')
    .option('--callback <url>', 'with --async: POST the result to this URL when it is done')
    .option('-v, --verbose', 'print the X-Jiffy-* headers to stderr')
    .option('--url <url>', 'gateway URL')
    .action(async (ref: string, o: { data?: string; async?: boolean; callback?: string; verbose?: boolean; url?: string }) => {
      parseFunctionRef(ref);
      const body = await readData(o.data);
      const query = o.async ? `?mode=async${o.callback ? `&callback=${encodeURIComponent(o.callback)}` : ''}` : '';
      const res = await gatewayFetch(gatewayUrl(o.url), `/v1/functions/${encodeURIComponent(ref)}/invoke${query}`, { method: 'POST', body: body ? new Uint8Array(body) : undefined }).catch((e: JiffyError) => {
        // A failed invocation still has the function's output: show it before the error.
        const logs = e.details?.logs;
        if (typeof logs === 'string' && logs) process.stderr.write(`--- function logs ---\n${logs}${logs.endsWith('\n') ? '' : '\n'}---------------------\n`);
        throw e;
      });
      if (o.verbose) res.headers.forEach((v, k) => { if (k.startsWith('x-jiffy')) console.error(`${k}: ${v}`); });
      const text = await res.text();
      process.stdout.write(o.async ? `${(JSON.parse(text) as { id: string }).id}\n` : text.endsWith('\n') ? text : `${text}\n`);
    });

  const fn = program.command('fn').description('list, inspect and remove functions; read invocation results');
  fn.command('ls').description('list deployed functions').option('--url <url>', 'gateway URL').action(async (o: { url?: string }) => {
    const j = (await (await gatewayFetch(gatewayUrl(o.url), '/v1/functions')).json()) as { functions: Array<Record<string, unknown>> };
    console.log(['NAME', 'VERSION', 'RUNTIME', 'HANDLER', 'MEMORY', 'TIMEOUT', 'CREATED'].join('\t'));
    for (const f of j.functions) console.log([f.name, f.version, f.runtime, f.handler, `${f.memoryMb}MiB`, `${f.timeoutS}s`, f.createdAt].join('\t'));
  });
  fn.command('info').description('versions and settings of a function').argument('<name>').option('--url <url>', 'gateway URL').action(async (name: string, o: { url?: string }) => {
    const j = await (await gatewayFetch(gatewayUrl(o.url), `/v1/functions/${encodeURIComponent(name)}`)).json();
    console.log(JSON.stringify(j, null, 2));
  });
  fn.command('rm').description('remove a function and all its versions').argument('<name>').option('--url <url>', 'gateway URL').action(async (name: string, o: { url?: string }) => {
    const j = (await (await gatewayFetch(gatewayUrl(o.url), `/v1/functions/${encodeURIComponent(name)}`, { method: 'DELETE' })).json()) as { versions: number[] };
    console.log(`removed ${name} (versions ${j.versions.join(', ')})`);
  });
  fn.command('result').description('status, result, logs and timings of an invocation').argument('<id>').option('--url <url>', 'gateway URL').action(async (id: string, o: { url?: string }) => {
    const j = await (await gatewayFetch(gatewayUrl(o.url), `/v1/invocations/${encodeURIComponent(id)}`)).json();
    console.log(JSON.stringify(j, null, 2));
  });
  registerDeadLetterCommands(fn);
}

function num(v: unknown): number | undefined {
  return v === undefined ? undefined : Number(v);
}

async function readData(d: string | undefined): Promise<Buffer | undefined> {
  if (d === undefined) return undefined;
  if (d === '@-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  if (d.startsWith('@')) return fs.readFile(d.slice(1));
  return Buffer.from(d);
}
