/** planRuntimeChanges: server churn stays runtime, any change of a balancer's shape reloads. */
import { describe, expect, it } from 'vitest';
import type { LbServer, ResolvedBalancer } from '../../../core/lb-record.js';
import { planRuntimeChanges } from '../../../roles/gateway/lb/plan-runtime.js';
import { record } from './fixtures.js';

const web = record({
  name: 'web',
  listen: { port: 80 },
  mode: 'http',
  hosts: ['web.example.org'],
  targets: [],
  health: { kind: 'http', path: '/' },
  tls: 'none',
  balance: 'roundrobin',
});
const srv = (name: string, addr = '10.0.0.1', port = 8080): LbServer => ({ name, addr, port });
const lb = (servers: LbServer[], r = web): ResolvedBalancer => ({ record: r, servers });

describe('planRuntimeChanges', () => {
  it('nothing changed: nothing to do', () => {
    expect(planRuntimeChanges([lb([srv('a')])], [lb([srv('a')])])).toEqual({ reload: [], changes: [] });
  });

  it('servers added, removed and readdressed go through the runtime API, removals first', () => {
    const plan = planRuntimeChanges([lb([srv('a'), srv('b')])], [lb([srv('b', '10.0.0.9', 81), srv('c', 'fd00::3')])]);
    expect(plan.reload).toEqual([]);
    expect(plan.changes).toEqual([
      { op: 'remove', backend: 'lb_web', server: 'a' },
      { op: 'readdress', backend: 'lb_web', server: 'b', addr: '10.0.0.9', port: 81 },
      { op: 'add', backend: 'lb_web', server: 'c', address: '[fd00::3]:8080' },
    ]);
  });

  it('a changed target selector or timestamp alone needs no reload', () => {
    const moved = { ...web, targets: [{ selector: { kind: 'tag', key: 'app', value: 'web' }, port: 80 }], updated_at: 'later' } as const;
    expect(planRuntimeChanges([lb([])], [lb([], moved)]).reload).toEqual([]);
  });

  it('a balancer added, removed or reshaped reloads', () => {
    const other = { ...web, name: 'other' };
    expect(planRuntimeChanges([lb([])], [lb([]), lb([], other)]).reload).toEqual(['balancer other added']);
    expect(planRuntimeChanges([lb([]), lb([], other)], [lb([])]).reload).toEqual(['balancer other removed']);
    const reshaped = { ...web, hosts: ['x.example.org'], health: { kind: 'tcp' }, balance: 'leastconn' } as const;
    expect(planRuntimeChanges([lb([])], [lb([], reshaped)]).reload).toEqual(['balancer web: hosts, health, balance changed']);
    for (const change of [{ listen: { port: 81 } }, { mode: 'tcp' }, { tls: 'acme' }, { path: '/api' }] as const) {
      expect(planRuntimeChanges([lb([])], [lb([], { ...web, ...change })]).reload).toHaveLength(1);
    }
  });
});
