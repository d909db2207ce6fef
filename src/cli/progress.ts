import type { ProgressEvent, ProgressFn } from '../progress.js';

/**
 * Renders progress events docker-style: one line per item (`<id>: <action> [bar] cur/total`).
 * On a TTY the lines are redrawn in place (cursor-up); elsewhere (CI logs, pipes) a line is
 * printed when an item changes action or finishes, and at most once per `intervalMs` while
 * bytes are moving — so logs stay readable and never flood.
 */
export interface ProgressRenderer extends ProgressFn {
  /** Draws the final state and stops redrawing. */
  close(): void;
}

interface Item {
  id: string;
  action: string;
  current?: number;
  total?: number;
  done?: boolean;
  lastPrinted: number;
  printedAction?: string;
}

/** A renderer writing to `stream` (usually process.stderr). */
export function createProgressRenderer(
  stream: NodeJS.WriteStream,
  opts: { intervalMs?: number } = {},
): ProgressRenderer {
  const tty = Boolean(stream.isTTY);
  const intervalMs = opts.intervalMs ?? (tty ? 100 : 2000);
  const items = new Map<string, Item>();
  let drawnLines = 0;
  let lastDraw = 0;
  let closed = false;

  const redraw = () => {
    const width = Math.max(40, (stream.columns ?? 100) - 1);
    let out = drawnLines > 0 ? `\x1b[${drawnLines}A` : '';
    for (const it of items.values()) out += `\x1b[2K${formatLine(it, true).slice(0, width)}\n`;
    drawnLines = items.size;
    lastDraw = Date.now();
    stream.write(out);
  };

  const plain = (it: Item, now: number) => {
    const changed = it.printedAction !== it.action || it.done;
    if (!changed && now - it.lastPrinted < intervalMs) return;
    it.lastPrinted = now;
    it.printedAction = it.action;
    stream.write(`${formatLine(it, false)}\n`);
  };

  const fn = ((ev: ProgressEvent) => {
    if (closed) return;
    const prev = items.get(ev.id);
    if (prev?.done && !ev.done && prev.action === ev.action) return;
    const it: Item = { ...(prev ?? { lastPrinted: 0 }), ...ev, id: ev.id };
    if (ev.current === undefined) delete it.current;
    if (ev.total === undefined) delete it.total;
    items.set(ev.id, it);
    const now = Date.now();
    if (!tty) plain(it, now);
    else if (ev.done || !prev || prev.action !== ev.action || now - lastDraw >= intervalMs) redraw();
  }) as ProgressRenderer;

  fn.close = () => {
    if (closed) return;
    if (tty && items.size > 0) redraw();
    closed = true;
  };
  return fn;
}

/** `id: Action [=====>    ]  1.2MB/3.4MB` (the bar only on a TTY and when the total is known). */
export function formatLine(it: Pick<Item, 'id' | 'action' | 'current' | 'total'>, bar: boolean): string {
  const id = it.id.startsWith('sha256:') ? it.id.slice(7, 19) : it.id;
  let s = `${id}: ${it.action}`;
  if (it.current !== undefined) {
    if (it.total) {
      if (bar) s += ` ${progressBar(it.current / it.total, 30)}`;
      s += ` ${formatBytes(it.current)}/${formatBytes(it.total)}`;
    } else {
      s += ` ${formatBytes(it.current)}`;
    }
  }
  return s;
}

function progressBar(frac: number, width: number): string {
  const f = Math.max(0, Math.min(1, frac));
  const full = Math.floor(f * width);
  const head = full < width ? '>' : '';
  return `[${'='.repeat(full)}${head}${' '.repeat(Math.max(0, width - full - head.length))}]`;
}

/** Human bytes, docker-style (decimal units). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${v}B` : `${v.toFixed(v < 10 ? 2 : 1)}${units[u]}`;
}
