import type { Command } from 'commander';
import { gatewayFetch, gatewayUrl } from '../functions/client.js';
import type { DeadLetter } from './dead-letters.js';

/**
 * `jiffy fn dead-letters NAME [--replay ID | --drop ID]`: lists, replays or drops a function's dead
 * letters through the gateway. Registered under the `fn` group by src/cli/commands/functions.ts.
 */
export function registerDeadLetterCommands(fn: Command): void {
  fn.command('dead-letters')
    .description('async invocations that failed their last attempt: list them, or replay/drop one')
    .argument('<name>', 'function name')
    .option('--replay <id>', 'queue the dead letter\'s event again (newest version) and drop it')
    .option('--drop <id>', 'delete the dead letter')
    .option('--limit <n>', 'how many to list (1-1000)', '100')
    .option('--json', 'print the JSON answer')
    .option('--url <url>', 'gateway URL')
    .action(async (name: string, o: { replay?: string; drop?: string; limit: string; json?: boolean; url?: string }) => {
      const base = gatewayUrl(o.url);
      const path = `/v1/functions/${encodeURIComponent(name)}/dead-letters`;
      if (o.replay) {
        const j = (await (await gatewayFetch(base, `${path}/${encodeURIComponent(o.replay)}/replay`, { method: 'POST' })).json()) as { id: string };
        console.log(`replayed ${o.replay} as invocation ${j.id} (jiffy fn result ${j.id})`);
        return;
      }
      if (o.drop) {
        await gatewayFetch(base, `${path}/${encodeURIComponent(o.drop)}`, { method: 'DELETE' });
        console.log(`dropped ${o.drop}`);
        return;
      }
      const j = (await (await gatewayFetch(base, `${path}?limit=${encodeURIComponent(o.limit)}`)).json()) as { count: number; deadLetters: DeadLetter[] };
      if (o.json) { console.log(JSON.stringify(j, null, 2)); return; }
      console.log(['ID', 'INVOCATION', 'VERSION', 'ATTEMPTS', 'FAILED', 'ERROR'].join('\t'));
      for (const d of j.deadLetters) console.log([d.id, d.invocationId, d.version, d.attempts, d.failedAt, `${d.error.code}: ${d.error.message.split('\n')[0]}`].join('\t'));
      if (j.count > j.deadLetters.length) console.error(`(${j.count} in all; showing ${j.deadLetters.length})`);
    });
}
