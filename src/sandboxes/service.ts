/**
 * The sandbox service of a long-lived server (`jiffy sandbox serve`, `jiffy up`): its own
 * launcher fork server and ContainerManager (warm rootfs mounts), a SandboxManager that boots and
 * execs through that launcher, and the HTTP routes. close() stops everything in the order that
 * leaves nothing behind: reaper and pool first, then the sandboxes (recorded exited, rootfs
 * unmounted), then the launcher (its pre-made cgroups and netns), then the warm mounts.
 */
import type { Hono } from 'hono';
import { ContainerManager } from '../containers/manager.js';
import type { ImageStore } from '../images/store.js';
import { Launcher } from '../launcher/index.js';
import type { Logger } from '../log.js';
import { SandboxManager } from './manager.js';
import { createSandboxRoutes } from './routes.js';

export interface SandboxServiceOptions {
  store: ImageStore;
  log?: Logger;
  /**
   * Keep `size` booted sandboxes ready per configuration; the default image is warmed at start.
   * Default 1: a create then costs records and one exec (~5 ms), not a container create (~13 ms).
   */
  pool?: { size: number };
  /** Largest uploaded file (see createSandboxRoutes). */
  maxBodyBytes?: number;
}

export interface SandboxService {
  /** The sandbox routes (`/v1/sandboxes…`), to mount with `app.route('/', routes)`. */
  routes: Hono;
  sandboxes: SandboxManager;
  close(): Promise<void>;
}

/** Start a launcher and a ContainerManager and serve sandboxes through them until close(). */
export async function createSandboxService(o: SandboxServiceOptions): Promise<SandboxService> {
  const launcher = await Launcher.start({ logger: o.log });
  const containers = new ContainerManager({ store: o.store, log: o.log });
  const size = o.pool?.size ?? 1;
  const sandboxes = new SandboxManager({ containers, store: o.store, log: o.log, launcher, pool: { size } });
  if (size > 0) {
    // A store without the default image is normal (sandboxes of other images): say so briefly.
    await sandboxes.warm().catch((e: Error) => o.log?.info({ reason: e.message }, 'no ready sandboxes of the default image; each configuration gets its ready ones on first use'));
  } else {
    // No ready sandboxes: still keep a rootfs of the default image mounted ahead of the first create.
    await containers.prewarm('busybox:latest').catch(() => undefined);
  }
  let closing: Promise<void> | undefined;
  return {
    routes: createSandboxRoutes({ sandboxes, maxBodyBytes: o.maxBodyBytes }),
    sandboxes,
    close: () => (closing ??= (async () => {
      await sandboxes.close();
      await launcher.close();
      await containers.close();
    })()),
  };
}
