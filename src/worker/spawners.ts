import type { ImageStore } from '../images/store.js';
import type { Logger } from '../log.js';
import { CliSpawner } from './cli-spawner.js';
import { ContainerSpawner } from './container-spawner.js';
import type { Spawner } from './spawner.js';

/**
 * The worker's container spawner: the launcher's fork server through its Node binding
 * (src/launcher) when it starts, else the launcher's one-shot CLI.
 * JIFFY_FN_SPAWNER=cli|fork-server forces one.
 */
export async function createSpawner(store: ImageStore, log: Logger): Promise<Spawner> {
  const want = process.env.JIFFY_FN_SPAWNER;
  if (want !== 'cli') {
    try {
      const fork = await ContainerSpawner.start(store);
      const stale = await fork.reapStale();
      if (stale) log.warn({ stale }, 'removed function instance dirs left behind by a worker that did not stop cleanly');
      return fork;
    } catch (e) {
      if (want === 'fork-server') throw e;
      log.warn({ err: e }, 'launcher fork server unavailable; using the launcher command line (slower boots)');
    }
  }
  const cli = new CliSpawner(store);
  const stale = await cli.reapStale();
  if (stale) log.warn({ stale }, 'removed function instances left behind by a worker that did not stop cleanly');
  return cli;
}
