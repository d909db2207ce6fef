/**
 * Killing an exec'd command together with everything it forked, when the command is not a
 * process-group leader of its own (the launcher's exec runs it in the server's process group, so
 * `kill(-pgid)` would hit the server and its parent). The tree is found through the ppid field of
 * /proc/<pid>/stat (this kernel has no /proc/<pid>/task/<tid>/children). Each process found is
 * stopped first and the scan repeats until it finds nothing new — a stopped process cannot fork
 * (a fork racing with the signal is restarted by the kernel), so the set converges — and only
 * then is everything SIGKILLed. A process that left the tree (double fork: reparented to the
 * sandbox's init) survives until the sandbox goes, as with `setsid` under a process-group kill.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** parent pid → child pids, from one pass over /proc. */
function childrenByParent(): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // comm may contain spaces and parentheses: fields after the LAST ')' are fixed.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = out.get(ppid);
    if (list) list.push(pid);
    else out.set(ppid, [pid]);
  }
  return out;
}

function descendants(root: number, kids: Map<number, number[]>): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]) ?? []));
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch { /* already gone */ }
}

/** SIGKILL `root` and all its descendants (see the header for the method and its one gap). */
export function killTree(root: number): void {
  const stopped = new Set<number>();
  for (let pass = 0; pass < 100; pass++) {
    const fresh = descendants(root, childrenByParent()).filter((p) => !stopped.has(p));
    if (fresh.length === 0) break;
    for (const p of fresh) {
      signal(p, 'SIGSTOP');
      stopped.add(p);
    }
  }
  for (const p of stopped) signal(p, 'SIGKILL');
}
