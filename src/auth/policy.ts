import { JiffyError } from '../errors.js';

/** True for addresses only this host can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

/**
 * The auth policy: `--auth on|off` wins; otherwise auth is on whenever the gateway listens beyond
 * loopback (0.0.0.0, ::, a LAN address), because then anyone on the network could deploy code.
 */
export function authRequired(host: string, flag?: string): boolean {
  if (flag === undefined || flag === '') return !isLoopback(host);
  if (flag === 'on') return true;
  if (flag === 'off') return false;
  throw new JiffyError('invalid_argument', `--auth ${JSON.stringify(flag)}: use on or off`);
}
