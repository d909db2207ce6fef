/**
 * Booting one container and waiting for it: the sequence every path shares (attached `run`, the
 * detached monitor, ContainerManager.run). Checklist:
 *   1. rootfs mounted (snapshot), 2. our cgroup level with the memory limit, 3. the runtime's
 *   `run` on the bundle (config.json beside state.json), 4. pid recorded → status running,
 *   5. on exit: status, OOM and peak memory from our cgroup, then runtime state, cgroup and
 *   rootfs mount are taken down — nothing stays behind once the process is gone.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import fs from 'node:fs/promises';
import { JiffyError } from '../errors.js';
import { createCgroup, memoryOutcome, removeCgroup } from './cgroup.js';
import type { ContainerRecords } from './records.js';
import { runArgv, runtimeDelete, signalOfExitCode } from './runtime.js';
import type { OverlaySnapshotter } from '../snapshots/snapshotter.js';
import type { ContainerRecord, ExitInfo } from './types.js';

export interface BootContext {
  root: string;
  records: ContainerRecords;
  snapshots: OverlaySnapshotter;
}

export interface BootedContainer {
  child: ChildProcess;
  /** Resolves once the container is running (pid known) or has already exited. */
  started: Promise<void>;
  /** Resolves with the exit status after cleanup and the state.json update. */
  exited: Promise<ExitInfo>;
}

/** The start time of a pid (field 22 of /proc/<pid>/stat), to recognise pid reuse. */
export async function pidStartTime(pid: number): Promise<string | undefined> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** True when `pid` is alive and is the process recorded with `start`. */
export async function isOurProcess(pid: number | undefined, start: string | undefined): Promise<boolean> {
  if (!pid) return false;
  const now = await pidStartTime(pid);
  return now !== undefined && (start === undefined || now === start);
}

/** Options of bootContainer. */
export interface BootOptions {
  /** The process that records the exit (reconcile leaves the record alone while it lives). */
  monitorPid?: number;
  /**
   * Called after the runtime cleanup instead of recording status exited (`--rm`: the record is
   * about to be deleted, so writing it would be wasted work on the hot path).
   */
  onExit?: (rec: ContainerRecord) => Promise<void>;
}

/** Boot container `id` (created, rootfs prepared) with the given stdio and track its lifetime. */
export async function bootContainer(ctx: BootContext, id: string, stdio: StdioOptions, opts: BootOptions = {}): Promise<BootedContainer> {
  const rec = await ctx.records.load(id);
  await ctx.snapshots.mount(id);
  await runtimeDelete(rec.runtime, ctx.root, rec.runtimeId);
  // jiffy-launch creates (and refuses an existing) jiffy/<id>; other runtimes nest below ours.
  if (rec.runtime.kind === 'oci') await createCgroup(rec.cgroupPath, { memoryBytes: rec.options.memoryBytes });
  else await removeCgroup(rec.cgroupPath).catch(() => undefined);
  const pidFile = ctx.records.path(id, 'pid');
  const reportFile = ctx.records.path(id, 'exit.json');
  await Promise.all([fs.rm(pidFile, { force: true }), fs.rm(reportFile, { force: true })]);
  const [bin, args] = runArgv(rec.runtime, ctx.root, rec.runtimeId, ctx.records.path(id), pidFile, reportFile);
  if (opts.monitorPid === process.pid) watch(ctx, id);
  const child = spawn(bin, args, { stdio });
  const exitCode = new Promise<{ code: number; spawnError?: string }>((resolve) => {
    child.once('error', (e) => resolve({ code: 127, spawnError: `starting ${bin} failed: ${e.message}` }));
    child.once('exit', (code, sig) => resolve({ code: code ?? 128 + (sig ? osSignal(sig) : 0) }));
  });
  const started = waitStarted(ctx, id, pidFile, exitCode, opts.monitorPid);
  const exited = exitCode.then(async ({ code, spawnError }) => {
    await started.catch(() => undefined);
    return finish(ctx, id, code, spawnError, opts.onExit);
  });
  return { child, started, exited };
}

function osSignal(sig: NodeJS.Signals): number {
  return ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1 } as Record<string, number>)[sig] ?? 0;
}

async function waitStarted(ctx: BootContext, id: string, pidFile: string, exit: Promise<unknown>, monitorPid?: number): Promise<void> {
  let gone = false;
  void exit.then(() => (gone = true));
  // Poll fast: the pid file appears within milliseconds and this wait is on every boot path.
  for (let n = 0, wait = 1; ; n++, wait = n < 200 ? 1 : 10) {
    const text = await fs.readFile(pidFile, 'utf8').catch(() => '');
    const pid = Number.parseInt(text, 10);
    if (pid > 0) {
      const pidStart = await pidStartTime(pid);
      // finish() waits for this, so "running" is always written before "exited".
      await ctx.records.update(id, (r) => {
        r.state = { ...r.state, status: 'running', pid, pidStart, monitorPid, startedAt: new Date().toISOString(), finishedAt: undefined, exitCode: undefined, signal: undefined, oomKilled: undefined, error: undefined };
      });
      return;
    }
    if (gone) return;
    await new Promise((r) => setTimeout(r, wait));
  }
}

/**
 * Collect the outcome, take everything down, record status exited. The exit is recorded even when
 * the cleanup fails (with `error` saying what failed; `rm` retries the cleanup): a record left
 * "running" with this process as its monitor would make every wait/remove poll forever.
 */
async function finish(ctx: BootContext, id: string, code: number, spawnError?: string, onExit?: BootOptions['onExit']): Promise<ExitInfo> {
  try {
    const rec = await ctx.records.load(id);
    const report = await readReport(ctx.records.path(id, 'exit.json'));
    const mem = report ?? (await memoryOutcome(rec.cgroupPath, signalOfExitCode(code) === 'SIGKILL'));
    const info: ExitInfo = {
      exitCode: code,
      signal: report?.signal ?? signalOfExitCode(code),
      oomKilled: mem.oomKilled,
      peakMemoryBytes: mem.peakMemoryBytes || undefined,
      finishedAt: new Date().toISOString(),
      error: spawnError,
    };
    const failed = await cleanupRuntime(ctx, rec).then(() => undefined, (e: Error) => e);
    if (failed) info.error = joinErrors(info.error, `cleanup after the exit failed: ${failed.message}`);
    // --rm deletes only a fully cleaned-up container; otherwise the exit is recorded for `rm` to finish.
    if (onExit && !failed) {
      const removeFailed = await onExit(rec).then(() => undefined, (e: Error) => e);
      if (!removeFailed) return info;
      info.error = joinErrors(info.error, `removing the container (--rm) failed: ${removeFailed.message}`);
    }
    await ctx.records.update(id, (r) => {
      r.state = { ...r.state, status: 'exited', pid: undefined, pidStart: undefined, monitorPid: undefined, ...info };
    });
    return info;
  } finally {
    unwatch(ctx, id);
  }
}

const joinErrors = (a: string | undefined, b: string) => (a ? `${a}; ${b}` : b);

/** jiffy-launch's `--report` JSON (exit code, signal, OOM kill, peak memory), if it wrote one. */
async function readReport(file: string): Promise<{ signal?: string; oomKilled: boolean; peakMemoryBytes?: number } | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  try {
    const r = JSON.parse(text) as { signal?: string; oomKilled?: boolean; peakMemoryBytes?: number };
    return { signal: r.signal ?? undefined, oomKilled: !!r.oomKilled, peakMemoryBytes: r.peakMemoryBytes };
  } catch {
    return undefined;
  }
}

/**
 * Runtime state, cgroup and rootfs mount of a stopped container. Every step runs even when another
 * fails (each tolerates absence); the first failure is then thrown, naming the step.
 */
export async function cleanupRuntime(ctx: BootContext, rec: ContainerRecord): Promise<void> {
  const steps: Array<[string, Promise<unknown>]> = [
    ['runtime delete', runtimeDelete(rec.runtime, ctx.root, rec.runtimeId)],
    ['cgroup removal', removeCgroup(rec.cgroupPath).catch(() => undefined)],
    ['rootfs unmount', ctx.snapshots.unmount(rec.id)],
    ['pid file removal', fs.rm(ctx.records.path(rec.id, 'pid'), { force: true })],
  ];
  const results = await Promise.allSettled(steps.map(([, p]) => p));
  const i = results.findIndex((r) => r.status === 'rejected');
  if (i < 0) return;
  const e = (results[i] as PromiseRejectedResult).reason as Error;
  throw new JiffyError('unavailable', `${steps[i][0]} of container ${rec.id.slice(0, 12)} failed: ${e.message ?? e}`, { cause: e });
}

/*
 * Containers whose exit this process is watching (it booted them with monitorPid = its own pid).
 * Reconcile trusts a record whose monitor is this process only while the id is here: once the
 * exit handler is done (or never attached) a dead container is reconciled like an unwatched one.
 * Keyed by the container directory, so managers of several stores in one process do not collide.
 */
const watching = new Set<string>();

/** Note that this process records `id`'s exit (boot paths that set monitorPid = process.pid). */
export function watch(ctx: Pick<BootContext, 'records'>, id: string): void {
  watching.add(ctx.records.path(id));
}

/** This process no longer records `id`'s exit. */
export function unwatch(ctx: Pick<BootContext, 'records'>, id: string): void {
  watching.delete(ctx.records.path(id));
}

/** True while this process's exit handler for `id` is pending. */
export function isWatched(ctx: Pick<BootContext, 'records'>, id: string): boolean {
  return watching.has(ctx.records.path(id));
}
