/**
 * The registry and the gateway agree on what can be served: a balancer `lb create` accepts beside
 * the stored ones (the record check, then the conflict check, as src/lb/registry.ts runs them) is
 * one the gateway's renderer serves with them, and one it refuses is one the renderer leaves out.
 * Both read the one rule in core/ (lb-listen.ts, lb-conflicts.ts); this table keeps it so.
 */
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { conflicts } from '../../../core/lb-conflicts.js';
import type { LoadBalancerRecord, ResolvedBalancer } from '../../../core/lb-record.js';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { planGatewayLb } from '../../../roles/gateway/lb/render-lb.js';
import { renderHaproxy } from '../../../roles/gateway/lb/render-haproxy.js';
import { haproxySettings } from '../../../roles/gateway/lb/config.js';
import { makeLoadBalancerRecord, type LoadBalancerInput } from '../../../src/lb/record.js';
import { lbInput } from '../../helpers/lb.js';

const self: Member = { name: 'gw', addr: '10.88.0.1', port: 7946, tags: { role: 'gateway' }, status: 'alive' };
const cfg = parseGatewayConfig({});
const at = (n: number) => new Date(Date.UTC(2026, 11, 1, 0, n));

/** What the registry says of `candidate` beside `stored`: undefined = accepted, else why not. */
function registry(stored: readonly LoadBalancerRecord[], candidate: LoadBalancerInput): string | undefined {
  let record: LoadBalancerRecord;
  try {
    record = makeLoadBalancerRecord(candidate, at(stored.length));
  } catch (err) {
    return (err as Error).message;
  }
  return conflicts(stored, record)[0];
}

/** What the gateway says of a record beside `stored`: undefined = served, else why it is left out. */
function gateway(stored: readonly LoadBalancerRecord[], record: LoadBalancerRecord): string | undefined {
  const resolved = (r: LoadBalancerRecord): ResolvedBalancer => ({
    record: r,
    servers: [{ name: 'i-a-8080', addr: '10.88.0.20', port: 8080 }],
  });
  const plan = planGatewayLb(cfg, [...stored, record].map(resolved), { node: 'gw', members: [self] });
  // What it serves, HAProxy's renderer takes as one config.
  expect(() => renderHaproxy(plan.served, haproxySettings(cfg.lb))).not.toThrow();
  return plan.leftOut.find((l) => l.name === record.name)?.reason;
}

type Case = [string, LoadBalancerInput[], LoadBalancerInput, boolean];
const web = (name: string, over: Partial<LoadBalancerInput> = {}) => lbInput(name, over);
const tcp = (name: string, over: Partial<LoadBalancerInput> = {}) =>
  lbInput(name, { mode: 'tcp', hosts: [], listen: { port: 5432 }, ...over });
const sni = (name: string, hosts: string[], over: Partial<LoadBalancerInput> = {}) =>
  lbInput(name, { mode: 'tcp', tls: 'passthrough', hosts, listen: { port: 443 }, ...over });

const CASES: Case[] = [
  ['another host on the port', [web('a')], web('b'), true],
  ['the same host', [web('a')], web('b', { hosts: ['a.example'] }), false],
  ['the same host under another path', [web('a')], web('b', { hosts: ['a.example'], path: '/api' }), true],
  ['the same host and path', [web('a', { path: '/api' })], web('b', { hosts: ['a.example'], path: '/api' }), false],
  ['two catch-alls', [web('a', { hosts: [] })], web('b', { hosts: [] }), false],
  ['two catch-alls on different paths', [web('a', { hosts: [] })], web('b', { hosts: [], path: '/x' }), true],
  ['another mode on the port', [web('a')], tcp('b', { listen: { port: 80 } }), false],
  [
    'acme beside plain http',
    [web('a', { listen: { port: 443 } })],
    web('b', { tls: 'acme', hosts: ['b.example.org'], listen: { port: 443 } }),
    false,
  ],
  ['two plain TCP on one port', [tcp('a')], tcp('b'), false],
  ['plain TCP on other ports', [tcp('a')], tcp('b', { listen: { port: 5433 } }), true],
  ['a wildcard and an explicit address on one port', [web('a')], web('b', { listen: { addr: '192.0.2.10', port: 80 } }), false],
  [
    'two explicit addresses on one port',
    [tcp('a', { listen: { addr: '192.0.2.10', port: 5432 } })],
    tcp('b', { listen: { addr: '192.0.2.11', port: 5432 } }),
    false,
  ],
  [
    'one explicit address, other hosts',
    [web('a', { listen: { addr: '192.0.2.10', port: 80 } })],
    web('b', { listen: { addr: '192.0.2.10', port: 80 } }),
    true,
  ],
  ['two SNI names', [sni('a', ['a.example'])], sni('b', ['b.example']), true],
  ['one SNI name twice', [sni('a', ['a.example'])], sni('b', ['a.example']), false],
  ['an IPv6 address', [], web('b', { listen: { addr: '2001:db8::10', port: 80 } }), false],
  ['a loopback address', [], web('b', { listen: { addr: '127.0.0.1', port: 80 } }), false],
  ['ssh', [], tcp('b', { listen: { port: 22 } }), false],
  ['DNS', [], tcp('b', { listen: { port: 53 } }), false],
  ['Serf RPC', [], tcp('b', { listen: { port: 7373 } }), false],
];

describe('the registry and the gateway agree on what conflicts', () => {
  it.each(CASES)('%s', (_, storedInputs, candidate, ok) => {
    const stored = storedInputs.map((s, i) => makeLoadBalancerRecord(s, at(i)));
    const byRegistry = registry(stored, candidate);
    expect(byRegistry === undefined, byRegistry).toBe(ok);
    // A record the registry refused can still reach the gateway (a foreign writer, a race, an older
    // rule): it is left out, and for the same reason.
    const record = {
      ...candidate,
      hosts: candidate.hosts ?? [],
      health: { kind: 'tcp' },
      tls: candidate.tls ?? 'none',
      balance: 'roundrobin',
      created_at: at(9).toISOString(),
      updated_at: at(9).toISOString(),
    } as LoadBalancerRecord;
    const byGateway = gateway(stored, record);
    expect(byGateway === undefined, byGateway).toBe(ok);
    if (byRegistry !== undefined) expect(byGateway).toBe(byRegistry);
  });
});
