/**
 * Messages on the control channel (keys.controlChannel()): gateways tell workers to prepare a
 * version before it goes live, and everyone when a function is published or removed.
 */
export type ControlMessage =
  | { type: 'prepare'; name: string; version: number; ack: string }
  | { type: 'published'; name: string; version: number }
  | { type: 'remove'; name: string };
