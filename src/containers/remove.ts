/**
 * Removing a stopped container completely: runtime state, cgroup, rootfs mounts (own overlay or
 * a view ref), the image lease that kept its layers from gc, its name, and its directory.
 * Shared by `rm`, `--rm` (in the CLI or the monitor) and reconcile.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { LeaseFiles } from '../images/leases.js';
import { cleanupRuntime, type BootContext } from './boot.js';
import type { ContainerRecord } from './types.js';

/** The lease id that keeps a container's image from garbage collection. */
export function containerLeaseId(id: string): string {
  return `container-${id}`;
}

/** Take down and delete everything of a stopped container. */
export async function removeContainerFiles(ctx: BootContext, rec: ContainerRecord): Promise<void> {
  await cleanupRuntime(ctx, rec);
  await deleteContainerFiles(ctx, rec);
}

/** The files-only part of removeContainerFiles, for a container whose runtime is already down. */
export async function deleteContainerFiles(ctx: BootContext, rec: ContainerRecord): Promise<void> {
  await ctx.snapshots.remove(rec.id);
  await ctx.records.releaseName(rec.name, rec.id);
  await new LeaseFiles(path.join(ctx.root, 'leases')).release(containerLeaseId(rec.id));
  await fs.rm(ctx.records.path(rec.id), { recursive: true, force: true });
}
