/**
 * `--listen [ADDR:]PORT`: the parser of the flag. What a listen may be (IPv4 only, not a port every
 * gateway uses) is core/lb-listen.ts's one check, which the gateway's renderer runs too.
 */
import type { LoadBalancerRecord } from '../../core/lb-record.js';
import { checkListen } from '../../core/lb-listen.js';
import { check } from '../../core/lb-syntax.js';

export { ALWAYS_RESERVED_PORTS as RESERVED_PORTS, checkListen, formatListen } from '../../core/lb-listen.js';

/** A decimal port 1–65535; `field` names the flag in the error. */
export function parsePort(text: string, field: string): number {
  check(/^\d{1,5}$/.test(text), field, `not a port: ${JSON.stringify(text)}`);
  const port = Number(text);
  check(port >= 1 && port <= 65535, field, `port ${port} is outside 1–65535`);
  return port;
}

/** `--listen [ADDR:]PORT`: `80`, `192.0.2.10:80`; `[2001:db8::10]:443` is refused by name (IPv6). */
export function parseListen(text: string): LoadBalancerRecord['listen'] {
  const v6 = /^\[([^\]]+)\]:([^:]*)$/.exec(text);
  const at = text.lastIndexOf(':');
  const [addr, port] = v6 ? [`[${v6[1]}]`, v6[2]] : at < 0 ? [undefined, text] : [text.slice(0, at), text.slice(at + 1)];
  const listen = { ...(addr !== undefined ? { addr } : {}), port: parsePort(port, 'listen') };
  checkListen(listen);
  return listen;
}
