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
  /**
   * Marks an invocation as running on this process; the returned function records its outcome.
   * With watchInstances() this is what splits instances into busy and warm at scrape time.
   */
  invocationStarted(fn: string): (o: InvocationOutcome) => void;
  /** Reads instance counts per `name@version` (a worker's Executor.instanceCounts) on every scrape. */
  watchInstances(counts: () => Record<string, number>): void;
  /** Reads queue depths on every scrape (replaces `queueDepths` given at creation). */
  watchQueues(depths: QueueDepthFn): void;
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
  const invocations = new Counter({ name: 'jiffy_invocations_total', help: 'Invocation attempts finished, by function and outcome (a retried async invocation counts once per attempt)', labelNames: ['function', 'outcome'], registers });
  const duration = new Histogram({ name: 'jiffy_invocation_duration_seconds', help: 'Invocation time by phase (queue_wait, boot, init, handler, total) and start (cold|warm)', labelNames: ['function', 'phase', 'start'], buckets: BUCKETS, registers });
  const explicit = new Map<string, { warm: number; busy: number }>();
  const inflight = new Map<string, number>();
  let counts: (() => Record<string, number>) | undefined;
  instancesGauge(registers, () => instanceStates(explicit, inflight, counts?.()));
  let depths = o.queueDepths;
  queueDepthGauge(registers, async () => (depths ? depths() : {}));
  const recordInvocation = (s: InvocationSample) => {
    invocations.inc({ function: s.fn, outcome: s.outcome });
    const start = s.cold ? 'cold' : 'warm';
    for (const [phase, ms] of Object.entries(s.phases)) {
      if (typeof ms === 'number' && Number.isFinite(ms)) duration.observe({ function: s.fn, phase, start }, Math.max(0, ms) / 1000);
    }
  };
  const m: Metrics = {
    registry,
    recordInvocation,
    recordOutcome(fn, out) {
      const phases = Object.fromEntries(PHASE_OF.map(([p, k]) => [p, out.timings[k]]));
      recordInvocation({ fn, outcome: outcomeLabel(out), phases, cold: out.coldStart });
    },
    setInstances(fn, warm, busy) {
      explicit.set(fn, { warm, busy });
    },
    forgetFunction(fn) {
      explicit.delete(fn);
      inflight.delete(fn);
    },
    invocationStarted(fn) {
      inflight.set(fn, (inflight.get(fn) ?? 0) + 1);
      let done = false;
      return (out) => {
        if (done) return;
        done = true;
        const n = (inflight.get(fn) ?? 1) - 1;
        if (n > 0) inflight.set(fn, n);
        else inflight.delete(fn);
        m.recordOutcome(fn, out);
      };
    },
    watchInstances(f) {
      counts = f;
    },
    watchQueues(f) {
      depths = f;
    },
  };
  return m;
}

/** Instance states per function: explicit reports, overridden by live counts minus busy ones. */
function instanceStates(explicit: Map<string, { warm: number; busy: number }>, inflight: Map<string, number>, counts?: Record<string, number>): Map<string, { warm: number; busy: number }> {
  const now = new Map(explicit);
  if (!counts) return now;
  const total = new Map<string, number>();
  for (const [ref, n] of Object.entries(counts)) {
    const fn = ref.slice(0, ref.lastIndexOf('@'));
    total.set(fn, (total.get(fn) ?? 0) + n);
  }
  for (const fn of new Set([...total.keys(), ...inflight.keys()])) {
    const busy = inflight.get(fn) ?? 0;
    now.set(fn, { warm: Math.max(0, (total.get(fn) ?? 0) - busy), busy });
  }
  return now;
}

function instancesGauge(registers: Registry[], states: () => Map<string, { warm: number; busy: number }>): void {
  new Gauge({
    name: 'jiffy_instances',
    help: 'Function instances on this process by state (warm = ready and idle, busy = serving)',
    labelNames: ['function', 'state'],
    registers,
    collect() {
      this.reset();
      for (const [fn, v] of states()) {
        this.set({ function: fn, state: 'warm' }, v.warm);
        this.set({ function: fn, state: 'busy' }, v.busy);
      }
    },
  });
}

function queueDepthGauge(registers: Registry[], depths: QueueDepthFn): void {
  new Gauge({
    name: 'jiffy_queue_depth',
    help: 'Jobs waiting in a queue (waiting + delayed + prioritized)',
    labelNames: ['queue'],
    registers,
    async collect() {
      this.reset();
      for (const [q, n] of Object.entries(await depths())) this.set({ queue: q }, n);
    },
  });
}
