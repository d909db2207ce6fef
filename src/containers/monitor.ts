/**
 * The per-container monitor (conmon's role): `node dist/src/containers/monitor.js ROOT ID`, started
 * detached (own session) by `jiffy run -d` / `jiffy start`, so the container outlives the CLI. It
 * boots the container, writes stdout/stderr to the rotating log, records the exit status in
 * state.json, and removes the container when it was created with --rm. One small process per
 * running detached container; it holds no server and exits with the container.
 */
import fs from 'node:fs/promises';
import { createLogger } from '../log.js';
import { OverlaySnapshotter } from '../snapshots/snapshotter.js';
import { bootContainer, cleanupRuntime, type BootContext } from './boot.js';
import { LogWriter } from './logs.js';
import { ContainerRecords } from './records.js';
import { removeContainerFiles } from './remove.js';

/** Run the monitor for container `id` under store `root`; resolves when the container has exited. */
export async function monitor(root: string, id: string): Promise<number> {
  const ctx: BootContext = { root, records: new ContainerRecords(root), snapshots: new OverlaySnapshotter(root) };
  const logDir = ctx.records.path(id, 'logs');
  await fs.mkdir(logDir, { recursive: true });
  const log = new LogWriter(logDir, (await ctx.records.load(id)).options.logMaxBytes);
  const booted = await bootContainer(ctx, id, ['ignore', 'pipe', 'pipe'], { monitorPid: process.pid });
  booted.child.stdout!.on('data', (c: Buffer) => log.write('stdout', c));
  booted.child.stderr!.on('data', (c: Buffer) => log.write('stderr', c));
  const streamsDone = Promise.all([
    new Promise((r) => booted.child.stdout!.once('close', r)),
    new Promise((r) => booted.child.stderr!.once('close', r)),
  ]);
  const info = await booted.exited;
  await streamsDone;
  log.close();
  const rec = await ctx.records.load(id);
  if (rec.options.autoRemove) await removeContainerFiles(ctx, rec);
  return info.exitCode;
}

/** The container could not be booted: record why (exit code 125, like docker) and take down what was set up. */
async function recordFailure(root: string, id: string, e: unknown): Promise<void> {
  const ctx: BootContext = { root, records: new ContainerRecords(root), snapshots: new OverlaySnapshotter(root) };
  const rec = await ctx.records.update(id, (r) => {
    r.state = { ...r.state, status: 'exited', exitCode: 125, error: String((e as Error).message ?? e), finishedAt: new Date().toISOString(), pid: undefined, monitorPid: undefined };
  });
  await cleanupRuntime(ctx, rec);
  if (rec.options.autoRemove) await removeContainerFiles(ctx, rec);
}

const isMain = process.argv[1] && import.meta.url === `file://${process.argv[1]}`;
if (isMain) {
  const [root, id] = process.argv.slice(2);
  const logger = createLogger('jiffy-monitor');
  if (!root || !id) {
    logger.error('usage: monitor.js ROOT ID');
    process.exit(2);
  }
  monitor(root, id).then(
    (code) => process.exit(code),
    async (e) => {
      logger.error({ err: e, id }, 'container monitor failed');
      await recordFailure(root, id, e).catch((e2) => logger.error({ err: e2, id }, 'cleanup after the failure failed'));
      process.exit(125);
    },
  );
}
