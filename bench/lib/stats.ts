/**
 * Shared benchmark helpers: percentiles over samples, a markdown table for people, and one JSON
 * object as the last stdout line for machines (`--json`). Every bench in bench/ uses these.
 */

/** Summary of a set of timing samples, all in milliseconds. */
export interface Percentiles {
  n: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  mean_ms: number;
  min_ms: number;
  max_ms: number;
}

/** Nearest-rank percentile of an ascending-sorted array (p in 0..100). */
function rank(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, i))];
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** p50/p90/p99 (nearest rank), mean, min, max of samples in ms, rounded to microseconds. */
export function percentiles(samplesMs: number[]): Percentiles {
  const s = [...samplesMs].sort((a, b) => a - b);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
  return {
    n: s.length,
    p50_ms: round3(rank(s, 50)),
    p90_ms: round3(rank(s, 90)),
    p99_ms: round3(rank(s, 99)),
    mean_ms: round3(mean),
    min_ms: round3(s[0] ?? NaN),
    max_ms: round3(s[s.length - 1] ?? NaN),
  };
}

/** One table row: column name → cell value. Columns are taken from the first row, in order. */
export type Row = Record<string, string | number | boolean | null | undefined>;

function cell(v: Row[string]): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '—';
  return String(v).replace(/\|/g, '\\|');
}

/** A GitHub-flavoured markdown table; columns come from the keys of the first row. */
export function markdownTable(rows: Row[]): string {
  if (rows.length === 0) return '(no rows)';
  const cols = Object.keys(rows[0]);
  const head = `| ${cols.join(' | ')} |`;
  const sep = `|${cols.map((c) => (typeof rows[0][c] === 'number' ? '---:' : '---')).join('|')}|`;
  const body = rows.map((r) => `| ${cols.map((c) => cell(r[c])).join(' | ')} |`);
  return [head, sep, ...body].join('\n');
}

/** True when the process was started with `--json`. */
export function wantsJson(argv: string[] = process.argv): boolean {
  return argv.includes('--json');
}

/**
 * Print results: a markdown table (rows are the entries of `results`, first column `name`)
 * followed, when `opts.json` is set, by `JSON.stringify(results)` as the very last stdout line.
 */
export function printResults(
  results: Record<string, Row | Percentiles>,
  opts: { json?: boolean; title?: string; notes?: string[] } = {},
): void {
  if (opts.title) console.log(`\n## ${opts.title}\n`);
  const rows = Object.entries(results).map(([name, r]) => ({ name, ...(r as Row) }));
  console.log(markdownTable(rows));
  for (const n of opts.notes ?? []) console.log(`\n${n}`);
  if (opts.json) console.log(JSON.stringify(results));
}

/** Run `fn` once and return its result and elapsed wall time in ms (process.hrtime.bigint). */
export async function timeIt<T>(fn: () => T | Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = process.hrtime.bigint();
  const result = await fn();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ms, result };
}

/** Elapsed ms since a `process.hrtime.bigint()` reading. */
export function msSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Read `--name VALUE` from argv as a positive integer, or the default. */
export function intFlag(name: string, def: number, argv: string[] = process.argv): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) {
    throw new Error(`--${name} needs a positive integer, got ${JSON.stringify(argv[i + 1])}`);
  }
  return v;
}
