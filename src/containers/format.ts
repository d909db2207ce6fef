/**
 * docker-style text for containers: `ps` columns (CONTAINER ID, IMAGE, COMMAND, CREATED, STATUS,
 * NAMES), human durations ("5 seconds ago", "Up 3 minutes", "Exited (3) 2 hours ago") and the
 * `-m 16m` size syntax.
 */
import { JiffyError } from '../errors.js';
import type { ContainerRecord } from './types.js';

/** "3 seconds", "About a minute", "2 hours" — docker's HumanDuration. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 1) return 'Less than a second';
  if (s < 60) return s === 1 ? '1 second' : `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(m / 60);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  return `${Math.round(h / 24)} days`;
}

/** The STATUS column. */
export function statusText(r: ContainerRecord, now = Date.now()): string {
  const s = r.state;
  const since = (t?: string) => humanDuration(now - Date.parse(t ?? r.created));
  switch (s.status) {
    case 'running': return `Up ${since(s.startedAt)}`;
    case 'paused': return `Up ${since(s.startedAt)} (Paused)`;
    case 'exited': return `Exited (${s.exitCode ?? 0}) ${since(s.finishedAt)} ago`;
    default: return 'Created';
  }
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** The rows of `jiffy ps`, as columns. */
export function psRows(recs: ContainerRecord[], now = Date.now()): string[][] {
  const head = ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'];
  const rows = recs.map((r) => [
    r.id.slice(0, 12),
    r.image,
    JSON.stringify(truncate([r.path, ...r.args].join(' '), 20)),
    `${humanDuration(now - Date.parse(r.created))} ago`,
    statusText(r, now),
    r.name,
  ]);
  return [head, ...rows];
}

/** Columns padded with three spaces, like docker's tabwriter. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] + 3))).join('')).join('\n');
}

/** `16m`, `1g`, `512k`, `1048576` → bytes. */
export function parseBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(s.trim());
  if (!m) throw new JiffyError('invalid_argument', `invalid size ${JSON.stringify(s)}: use a number with an optional unit b, k, m or g (e.g. 16m)`);
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  const v = Math.floor(Number(m[1]) * mult);
  if (v < 6 * 1024 * 1024) throw new JiffyError('invalid_argument', `memory limit ${s} is too small: the minimum is 6m`);
  return v;
}
