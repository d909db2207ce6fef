import { pino, type Logger } from 'pino';

/**
 * Structured JSON logs (pino) to stderr. Level from JIFFY_LOG_LEVEL (default "info"; tests use "warn").
 * Pass the logger in; do not import a global one in library code.
 */
export function createLogger(name: string, level = process.env.JIFFY_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level }, pino.destination(2));
}
export type { Logger };
