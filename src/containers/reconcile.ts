/**
 * Reconcile on load: the record says running, but is it? If the container's process is gone (or
 * its pid now belongs to someone else) and no monitor is alive to record the exit, the container
 * is marked exited here and its runtime state, cgroup and rootfs mount are taken down. Run on
 * every list/get, so a restart of the jiffy process (or a crashed monitor) leaves no ghosts.
 */
import { pidAlive } from '../snapshots/warm-pool.js';
import { cleanupRuntime, isOurProcess, isWatched, type BootContext } from './boot.js';
import { memoryOutcome } from './cgroup.js';
import type { ContainerRecord } from './types.js';

/** Exit code recorded when a container died while nobody watched (the real status is lost). */
export const UNWATCHED_EXIT_CODE = 255;

/** Bring `rec` in line with reality; returns the (possibly updated) record. */
export async function reconcile(ctx: BootContext, rec: ContainerRecord): Promise<ContainerRecord> {
  if (rec.state.status !== 'running' && rec.state.status !== 'paused') return rec;
  if (await isOurProcess(rec.state.pid, rec.state.pidStart)) return rec;
  // A live monitor (or the process that runs the container in-process) records the exit itself.
  if (rec.state.monitorPid && pidAlive(rec.state.monitorPid) && rec.state.monitorPid !== process.pid) return rec;
  // This process as monitor: trusted only while its exit handler is pending (see boot.ts
  // watch()); a handler that is gone without recording the exit must not leave the record running.
  if (rec.state.monitorPid === process.pid && isWatched(ctx, rec.id)) return rec;
  const mem = await memoryOutcome(rec.cgroupPath);
  // Recorded exited even if the cleanup fails: `rm` retries it, and nothing polls a ghost.
  const failed = await cleanupRuntime(ctx, rec).then(() => undefined, (e: Error) => e);
  return ctx.records.update(rec.id, (r) => {
    if (r.state.status !== 'running' && r.state.status !== 'paused') return;
    r.state = {
      ...r.state,
      status: 'exited',
      exitCode: UNWATCHED_EXIT_CODE,
      oomKilled: mem.oomKilled,
      peakMemoryBytes: mem.peakMemoryBytes,
      pid: undefined,
      pidStart: undefined,
      monitorPid: undefined,
      finishedAt: new Date().toISOString(),
      error: 'the container process ended while no monitor was watching; its exit status is unknown' +
        (failed ? `; cleanup failed: ${failed.message}` : ''),
    };
  });
}
