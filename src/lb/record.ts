/**
 * The pure parsers that turn `mammatus lb create` flags into a load balancer record
 * (core/lb-record.ts), checked by the one record check every reader runs (core/lb-check.ts: the
 * registry before it stores a record, the feed on every value it reads, the gateway on its copy).
 * The health check defaults to a TCP connect: it works for every backend, where an HTTP GET of a
 * path the application does not serve would mark every server down.
 */
import type { LbBalance, LbHealth, LbMode, LbSelector, LbTarget, LbTls, LoadBalancerRecord } from '../../core/lb-record.js';
import { parsePort } from './listen.js';
import { check } from '../../core/lb-syntax.js';
import { checkLoadBalancerRecord, checkPath, checkSelector } from '../../core/lb-check.js';

export { formatListen, parseListen, RESERVED_PORTS } from './listen.js';
export {
  checkLoadBalancerRecord,
  formatSelector,
  formatTarget,
  LB_BALANCE,
  LB_MODES,
  LB_TLS,
  MAX_HOSTS,
  MAX_TARGETS,
} from '../../core/lb-check.js';
export { byText, isHostName, LB_SAFE_PATH, LbRecordError } from '../../core/lb-syntax.js';

/** `instance:NAME`, `tag:KEY=VALUE` or `member:NAME` (without the port). */
export function parseSelector(text: string): LbSelector {
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  const selector: LbSelector | undefined =
    kind === 'instance'
      ? { kind, name: rest }
      : kind === 'member'
        ? { kind, name: rest }
        : kind === 'tag' && rest.includes('=')
          ? { kind, key: rest.slice(0, rest.indexOf('=')), value: rest.slice(rest.indexOf('=') + 1) }
          : undefined;
  check(selector !== undefined, 'target', `not instance:NAME, tag:KEY=VALUE or member:NAME: ${JSON.stringify(text)}`);
  checkSelector(selector, 'target');
  return selector;
}

/** `--target SELECTOR:PORT`, e.g. `tag:app=web:8080`; the port is what follows the last `:`. */
export function parseTargetSpec(text: string): LbTarget {
  const at = text.lastIndexOf(':');
  check(at > 0, 'target', `not SELECTOR:PORT: ${JSON.stringify(text)}`);
  const port = parsePort(text.slice(at + 1), 'target');
  return { selector: parseSelector(text.slice(0, at)), port };
}

/** `--health PATH|tcp`. */
export function parseHealth(text: string): LbHealth {
  if (text === 'tcp') return { kind: 'tcp' };
  check(text.startsWith('/'), 'health', `not a path (/healthz) or tcp: ${JSON.stringify(text)}`);
  checkPath(text, 'health');
  return { kind: 'http', path: text };
}

/** What `makeLoadBalancerRecord` takes: the flags, parsed. */
export interface LoadBalancerInput {
  readonly name: string;
  readonly listen: LoadBalancerRecord['listen'];
  readonly mode: LbMode;
  /** Lower-cased here (Host and SNI compare without case). */
  readonly hosts?: readonly string[];
  readonly path?: string;
  readonly targets: readonly LbTarget[];
  /** Default: a TCP connect. */
  readonly health?: LbHealth;
  /** Default `none`. */
  readonly tls?: LbTls;
  /** Default `roundrobin`. */
  readonly balance?: LbBalance;
}

/** Builds a checked record; @throws LbRecordError naming the field at fault. */
export function makeLoadBalancerRecord(input: LoadBalancerInput, now: Date): LoadBalancerRecord {
  const at = now.toISOString();
  return checkLoadBalancerRecord({
    name: input.name,
    listen: { ...input.listen },
    mode: input.mode,
    hosts: (input.hosts ?? []).map((h) => h.toLowerCase()),
    ...(input.path !== undefined ? { path: input.path } : {}),
    targets: input.targets.map((t) => ({ selector: { ...t.selector }, port: t.port })),
    health: input.health ?? { kind: 'tcp' },
    tls: input.tls ?? 'none',
    balance: input.balance ?? 'roundrobin',
    created_at: at,
    updated_at: at,
  });
}
