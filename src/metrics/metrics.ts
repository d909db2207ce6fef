import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { InvocationOutcome } from '../functions/outcome.js';

/** How an invocation ended, as the `outcome` label says it. */
export type OutcomeLabel = 'success' | 'error' | 'timeout' | 'oom' | 'crashed' | 'throttled';
/** Where an invocation's time went (`total` = enqueue to result). */
export type Phase = 'queue_wait' | 'boot' | 'init' | 'handler' | 'total';

/** One finished invocation, as the worker (or a gateway refusing it) reports it. */
export interface InvocationSample {
  fn: string;
  outcome: OutcomeLabel;
  /** Milliseconds per phase (as in the outcome's timings); phases left out are not observed. */
  phases: Partial<Record<Phase, number>>;
  cold: boolean;
}

/** Reads current queue depths (jobs waiting, delayed or prioritized) by queue name. */
export type QueueDepthFn = () => Promise<Record<string, number>>;

export interface MetricsOptions {
  /** The registry to register on (default: a new one; never prom-client's global default). */
  registry?: Registry;
  /** Called on every scrape for jiffy_queue_depth. */
  queueDepths?: QueueDepthFn;
}

/** The recorder the worker and gateway call, plus the registry /metrics serves. */
export interface Metrics {
  readonly registry: Registry;
  recordInvocation(s: InvocationSample): void;
  /** Records an InvocationOutcome (label and phases derived from it). */
  recordOutcome(fn: string, o: InvocationOutcome): void;
  /** Current warm (idle, ready) and busy instances of a function on this process. */
  setInstances(fn: string, warm: number, busy: number): void;
  /** Drops a removed function's instance gauges so they do not linger at their last value. */
  forgetFunction(fn: string): void;
}

// From 0.5 ms (a warm invoke's handler) to 5 min (the longest timeouts).
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

const PHASE_OF: Array<[Phase, keyof InvocationOutcome['timings']]> = [
  ['queue_wait', 'queueWaitMs'],
  ['boot', 'bootMs'],
  ['init', 'initMs'],
  ['handler', 'handlerMs'],
  ['total', 'totalMs'],
];

/** The outcome label of an InvocationOutcome. */
export function outcomeLabel(o: Pick<InvocationOutcome, 'ok' | 'error'>): OutcomeLabel {
  if (o.ok) return 'success';
  switch (o.error?.code) {
    case 'deadline_exceeded': return 'timeout';
    case 'out_of_memory': return 'oom';
    case 'function_crashed': return 'crashed';
    case 'resource_exhausted': return 'throttled';
    default: return 'error';
  }
}

/** Creates the Jiffy metrics on a registry of their own (or the one passed in). */
export function createMetrics(o: MetricsOptions = {}): Metrics {
  const registry = o.registry ?? new Registry();
  const registers = [registry];
  const invocations = new Counter({ name: 'jiffy_invocations_total', help: 'Invocations finished, by function and outcome', labelNames: ['function', 'outcome'], registers });
  const duration = new Histogram({ name: 'jiffy_invocation_duration_seconds', help: 'Invocation time by phase (queue_wait, boot, init, handler, total) and start (cold|warm)', labelNames: ['function', 'phase', 'start'], buckets: BUCKETS, registers });
  const instances = new Gauge({ name: 'jiffy_instances', help: 'Function instances on this process by state (warm = ready and idle, busy = serving)', labelNames: ['function', 'state'], registers });
  const queueDepths = o.queueDepths;
  new Gauge({
    name: 'jiffy_queue_depth',
    help: 'Jobs waiting in a queue (waiting + delayed + prioritized)',
    labelNames: ['queue'],
    registers,
    async collect() {
      if (!queueDepths) return;
      this.reset();
      for (const [q, n] of Object.entries(await queueDepths())) this.set({ queue: q }, n);
    },
  });
  const recordInvocation = (s: InvocationSample) => {
    invocations.inc({ function: s.fn, outcome: s.outcome });
    const start = s.cold ? 'cold' : 'warm';
    for (const [phase, ms] of Object.entries(s.phases)) {
      if (typeof ms === 'number' && Number.isFinite(ms)) duration.observe({ function: s.fn, phase, start }, Math.max(0, ms) / 1000);
    }
  };
  return {
    registry,
    recordInvocation,
    recordOutcome(fn, out) {
      const phases = Object.fromEntries(PHASE_OF.map(([p, k]) => [p, out.timings[k]]));
      recordInvocation({ fn, outcome: outcomeLabel(out), phases, cold: out.coldStart });
    },
    setInstances(fn, warm, busy) {
      instances.set({ function: fn, state: 'warm' }, warm);
      instances.set({ function: fn, state: 'busy' }, busy);
    },
    forgetFunction(fn) {
      instances.remove({ function: fn, state: 'warm' });
      instances.remove({ function: fn, state: 'busy' });
    },
  };
}
