/**
 * Every Redis key and channel name Jiffy's functions layer uses, built in this one module
 * (bullmq style) so a prefix change or an audit touches one file. Colons separate our own key
 * parts; BullMQ queue *names* may not contain ':' (BullMQ uses it as its own separator), so queue
 * names use '-' and BullMQ gets its own key prefix `<prefix>:bull`.
 */
export interface Keys {
  readonly prefix: string;
  /** Set of deployed function names. */
  functions(): string;
  /** String: newest version number of a function. */
  latest(name: string): string;
  /** Counter allocating version numbers (never reused while the function exists). */
  versionSeq(name: string): string;
  /** String (JSON FunctionVersion) of one immutable version. */
  version(name: string, version: number): string;
  /** Sorted set jobId → deadline (ms): invocations holding a capacity slot. */
  slots(name: string): string;
  /** Sorted set workerId → last heartbeat (ms). */
  workers(): string;
  /** Pub/sub channel: deploy/remove notices for workers. */
  controlChannel(): string;
  /** List a deploy waits on for workers' "prepared" acks. */
  prepareAcks(token: string): string;
  /** Pub/sub channel on which one gateway receives sync results. */
  replyChannel(gatewayId: string): string;
  /** BullMQ key prefix (BullMQ appends `:<queue>:<suffix>`). */
  bullPrefix(): string;
  /** BullMQ queue name of a function (no ':' allowed by BullMQ). */
  queueName(name: string): string;
}

/** Builds the key set for one prefix (tests pass a unique prefix; default "jiffy"). */
export function createKeys(prefix = 'jiffy'): Keys {
  const p = prefix;
  return {
    prefix: p,
    functions: () => `${p}:functions`,
    latest: (name) => `${p}:fn:${name}:latest`,
    versionSeq: (name) => `${p}:fn:${name}:seq`,
    version: (name, v) => `${p}:fn:${name}:v:${v}`,
    slots: (name) => `${p}:fn:${name}:slots`,
    workers: () => `${p}:workers`,
    controlChannel: () => `${p}:ch:control`,
    prepareAcks: (token) => `${p}:prepare:${token}`,
    replyChannel: (gatewayId) => `${p}:ch:reply:${gatewayId}`,
    bullPrefix: () => `${p}:bull`,
    queueName: (name) => `fn-${name}`,
  };
}
