/**
 * The per-container cgroup Jiffy owns: `jiffy/<id>` in each controller it uses, with the runtime's
 * own cgroup nested below (`jiffy/<id>/c`, the spec's cgroupsPath). The memory limit sits on our
 * level, not the runtime's: on cgroup v1 the OOM-kill counter and max_usage stay readable here
 * after the runtime has deleted its child cgroup, which is how exit status gets OOMKilled and peak
 * memory. The freezer (pause for commit/cp) also acts on our level. Hybrid hosts (v1 controllers
 * plus an empty cgroup2) are treated as v1; pure v2 hosts use memory.peak / memory.events / cgroup.freeze.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

const BASE = process.env.JIFFY_CGROUP_ROOT || '/sys/fs/cgroup';
const V1_CONTROLLERS = ['memory', 'pids', 'cpu', 'freezer'] as const;

/** True when the host uses the unified cgroup v2 hierarchy only. */
export function isCgroupV2(): boolean {
  return existsSync(path.join(BASE, 'cgroup.controllers'));
}

/** Our cgroup path for a container (relative to each hierarchy's root). */
export function containerCgroup(id: string): string {
  return `jiffy/${id}`;
}

function dirs(rel: string): string[] {
  return isCgroupV2() ? [path.join(BASE, rel)] : V1_CONTROLLERS.map((c) => path.join(BASE, c, rel));
}

function memDir(rel: string): string {
  return isCgroupV2() ? path.join(BASE, rel) : path.join(BASE, 'memory', rel);
}

/** Create our level for `rel` and apply the memory limit there. */
export async function createCgroup(rel: string, limits: { memoryBytes?: number }): Promise<void> {
  for (const d of dirs(rel)) await fs.mkdir(d, { recursive: true });
  if (isCgroupV2()) {
    await enableV2Controllers(rel);
    if (limits.memoryBytes) {
      await fs.writeFile(path.join(memDir(rel), 'memory.max'), String(limits.memoryBytes));
      await fs.writeFile(path.join(memDir(rel), 'memory.swap.max'), '0').catch(() => undefined);
    }
    return;
  }
  if (limits.memoryBytes) {
    await fs.writeFile(path.join(memDir(rel), 'memory.limit_in_bytes'), String(limits.memoryBytes));
    // Without swap accounting the file is missing; with it, cap swap too so a hog is OOM-killed.
    await fs.writeFile(path.join(memDir(rel), 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes)).catch(() => undefined);
  }
}

async function enableV2Controllers(rel: string): Promise<void> {
  const parts = rel.split('/');
  for (let i = 0; i <= parts.length; i++) {
    const d = path.join(BASE, ...parts.slice(0, i));
    await fs.writeFile(path.join(d, 'cgroup.subtree_control'), '+memory +pids +cpu').catch(() => undefined);
  }
}

/**
 * Peak memory and whether the OOM killer fired in this cgroup (undefined when unreadable). On v1
 * the kernel counts an OOM kill in the victim's own memcg (the runtime's child, gone by now), so
 * for a SIGKILLed container a non-zero `memory[.memsw].failcnt` at our level (the limit was hit) counts too.
 */
export async function memoryOutcome(rel: string, killed = false): Promise<{ peakMemoryBytes?: number; oomKilled: boolean }> {
  const d = memDir(rel);
  const read = (f: string) => fs.readFile(path.join(d, f), 'utf8').catch(() => undefined);
  const v2 = isCgroupV2();
  const peak = await read(v2 ? 'memory.peak' : 'memory.max_usage_in_bytes');
  const events = await read(v2 ? 'memory.events' : 'memory.oom_control');
  const m = events?.match(/^oom_kill (\d+)$/m);
  let oomKilled = m ? Number(m[1]) > 0 : false;
  if (!oomKilled && killed && !v2) {
    const fails = Number((await read('memory.failcnt')) ?? 0) + Number((await read('memory.memsw.failcnt')) ?? 0);
    // Some runtimes leave failcnt at 0 here; a SIGKILL with usage at the limit is the same verdict.
    const limit = Number((await read('memory.limit_in_bytes')) ?? 0);
    oomKilled = fails > 0 || (limit > 0 && !!peak && Number(peak) >= limit - 65536);
  }
  return { peakMemoryBytes: peak ? Number(peak.trim()) : undefined, oomKilled };
}

/** Pids of every process in the cgroup tree (ours and the runtime's child). */
export async function cgroupPids(rel: string): Promise<number[]> {
  const out = new Set<number>();
  const walk = async (d: string): Promise<void> => {
    const procs = await fs.readFile(path.join(d, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const p of procs.split('\n').filter(Boolean)) out.add(Number(p));
    const ents = await fs.readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of ents) if (e.isDirectory()) await walk(path.join(d, e.name));
  };
  await walk(memDir(rel));
  return [...out].sort((a, b) => a - b);
}

/** The cgroup.procs files a process must join to be inside the container's limits (exec); `rel` is the leaf. */
export function joinFiles(rel: string): string[] {
  return dirs(rel).map((d) => path.join(d, 'cgroup.procs')).filter((f) => existsSync(f));
}

/** Freeze (pause) or thaw the container's processes; resolves once the state is reached. */
export async function setFrozen(rel: string, frozen: boolean): Promise<void> {
  if (isCgroupV2()) {
    await fs.writeFile(path.join(BASE, rel, 'cgroup.freeze'), frozen ? '1' : '0');
    return;
  }
  const f = path.join(BASE, 'freezer', rel, 'freezer.state');
  await fs.writeFile(f, frozen ? 'FROZEN' : 'THAWED');
  for (let i = 0; i < 500; i++) {
    const s = (await fs.readFile(f, 'utf8')).trim();
    if (s === (frozen ? 'FROZEN' : 'THAWED')) return;
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Remove our level and anything left below it (empty cgroups only; processes must be gone). */
export async function removeCgroup(rel: string): Promise<void> {
  const rmTree = async (d: string): Promise<void> => {
    const ents = await fs.readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of ents) if (e.isDirectory()) await rmTree(path.join(d, e.name));
    await fs.rmdir(d).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  };
  // Hierarchies are independent: take them down in parallel (this runs twice per container).
  await Promise.all(dirs(rel).map(rmTree));
  // The runtime may also have created the nested cgroup in hierarchies we do not manage.
  if (!isCgroupV2()) {
    const others = ['cpuacct', 'cpuset', 'devices', 'blkio', 'systemd', 'unified', 'hugetlb', 'net_cls', 'perf_event'];
    await Promise.all(others.map((c) => rmTree(path.join(BASE, c, rel)).catch(() => undefined)));
  }
}

/** Cgroup dirs (in any hierarchy) whose path contains `needle`; for leak checks. */
export async function cgroupsMatching(needle: string): Promise<string[]> {
  const found: string[] = [];
  const hier = await fs.readdir(BASE).catch(() => [] as string[]);
  for (const h of hier) {
    const jd = path.join(BASE, h, 'jiffy');
    const ents = await fs.readdir(jd).catch(() => [] as string[]);
    for (const e of ents) if (e.includes(needle)) found.push(path.join(jd, e));
  }
  return found;
}

/**
 * removeCgroup, retried while the kernel still says EBUSY: killed tasks leave their cgroup a little
 * after they died (exit finishes asynchronously), so right after a container was killed the rmdir
 * can fail briefly — as in the launcher's jl_cg_destroy. Backs off from 1 ms to 20 ms, for at most
 * `timeoutMs` (default 2 s); then the EBUSY is thrown.
 */
export async function removeCgroupWhenEmpty(rel: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
    try {
      await removeCgroup(rel);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || Date.now() >= deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, wait));
  }
}
