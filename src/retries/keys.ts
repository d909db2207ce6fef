/** Redis key names of retries, dead letters and callbacks (same prefix as src/queue/keys.ts). */
export interface RetryKeys {
  /** Stream: a function's dead letters (invocations that failed their last attempt). */
  deadLetters(fn: string): string;
}

export function createRetryKeys(prefix = 'jiffy'): RetryKeys {
  return { deadLetters: (fn) => `${prefix}:fn:${fn}:dead` };
}
