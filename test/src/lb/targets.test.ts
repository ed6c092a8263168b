/**
 * Resolving balancers' targets: which instances and members count, stable server names that say
 * the machine's kind, one server per address and port, sorted output.
 */
import { describe, expect, it } from 'vitest';
import { makeLoadBalancerRecord, parseTargetSpec } from '../../../src/lb/record.js';
import { instanceAddress, resolveBalancers, resolveServers, type LbInstance, type LbMember } from '../../../src/lb/targets.js';

const NOW = new Date('2026-12-07T00:00:00Z');
const AT = NOW.toISOString();
const lb = (name: string, ...targets: string[]) =>
  makeLoadBalancerRecord({ name, listen: { port: 80 }, mode: 'http', targets: targets.map((t) => parseTargetSpec(t)) }, NOW);

const inst = (name: string, ip: string | string[], tags: Record<string, string> = {}, over: Partial<LbInstance> = {}): LbInstance => ({
  name,
  ips: Array.isArray(ip) ? ip : [ip],
  tags,
  state: 'running',
  observed: { status: 'running', at: AT },
  ...over,
});
const member = (name: string, addr: string, status: LbMember['status'] = 'alive'): LbMember => ({ name, addr, status });

describe('which instances serve', () => {
  it('counts only an instance asked to run, seen running, with an IPv4 address (its first)', () => {
    expect(instanceAddress(inst('a', ['2001:db8::1', '10.0.0.5', '10.0.0.6']))).toBe('10.0.0.5');
    expect(instanceAddress(inst('a', '10.0.0.5', {}, { state: 'stopped' }))).toBeUndefined();
    expect(instanceAddress(inst('a', '10.0.0.5', {}, { state: 'deleting' }))).toBeUndefined();
    expect(instanceAddress(inst('a', '10.0.0.5', {}, { observed: { status: 'stopped', at: AT } }))).toBeUndefined();
    expect(instanceAddress(inst('a', '10.0.0.5', {}, { observed: { status: 'error', error: 'x', at: AT } }))).toBeUndefined();
    // Launched, but its compute node has not reported it yet; or a hand-registered machine nobody observes.
    expect(instanceAddress(inst('a', '10.0.0.5', {}, { observed: undefined }))).toBeUndefined();
    expect(instanceAddress(inst('a', '10.0.0.5', {}, { state: 'registered', observed: undefined }))).toBeUndefined();
    expect(instanceAddress(inst('a', ['2001:db8::1']))).toBeUndefined();
    expect(instanceAddress(inst('a', []))).toBeUndefined();
    // Not an address, whatever it looks like.
    expect(instanceAddress(inst('a', ['999.1.1.1', '10.0.0.05', '10.0.0.7 backup', '10.0.0.8']))).toBe('10.0.0.8');
  });
});

describe('resolveBalancers', () => {
  const instances = [
    inst('web2', '10.0.0.12', { app: 'web' }),
    inst('web1', '10.0.0.11', { app: 'web', tier: 'a' }),
    inst('web3', '10.0.0.13', { app: 'web' }, { state: 'stopped' }),
    inst('db', '10.0.0.20', { app: 'db' }),
    inst('noip', [], { app: 'web' }),
  ];
  const members = [member('st1', '192.168.1.5'), member('gone', '192.168.1.6', 'failed'), member('v6', '2001:db8::7')];

  it('resolves instance:, tag: and member: selectors to named servers, sorted by name', () => {
    expect(resolveServers(lb('a', 'tag:app=web:8080'), instances, members)).toEqual([
      { name: 'i-web1-8080', addr: '10.0.0.11', port: 8080 },
      { name: 'i-web2-8080', addr: '10.0.0.12', port: 8080 },
    ]);
    expect(resolveServers(lb('a', 'instance:db:5432', 'member:st1:80', 'member:v6:80'), instances, members)).toEqual([
      { name: 'i-db-5432', addr: '10.0.0.20', port: 5432 },
      { name: 'm-st1-80', addr: '192.168.1.5', port: 80 },
      { name: 'm-v6-80', addr: '2001:db8::7', port: 80 },
    ]);
  });

  it('resolves to nothing for unknown, stopped, address-less instances and members not alive', () => {
    expect(
      resolveServers(
        lb('a', 'instance:web3:80', 'instance:noip:80', 'instance:ghost:80', 'member:gone:80', 'member:nobody:80', 'tag:app=none:80'),
        instances,
        members,
      ),
    ).toEqual([]);
  });

  it('keeps one server per machine and port: an instance name before a member name', () => {
    const servers = resolveServers(lb('a', 'tag:app=web:80', 'instance:web1:80', 'tag:tier=a:80', 'tag:app=web:81'), instances, members);
    expect(servers.map((s) => s.name)).toEqual(['i-web1-80', 'i-web1-81', 'i-web2-80', 'i-web2-81']);
    // A member at an instance's address and port is the same server: the instance's name keeps it.
    const same = resolveServers(lb('c', 'member:alias:80', 'instance:web1:80'), instances, [member('alias', '10.0.0.11')]);
    expect(same).toEqual([{ name: 'i-web1-80', addr: '10.0.0.11', port: 80 }]);
  });

  it('keeps an instance and a member of one name apart: two machines, two names', () => {
    const record = lb('b', 'member:db:5432', 'instance:db:5432');
    const dbMember = member('db', '192.168.1.9');
    expect(resolveServers(record, instances, [dbMember])).toEqual([
      { name: 'i-db-5432', addr: '10.0.0.20', port: 5432 },
      { name: 'm-db-5432', addr: '192.168.1.9', port: 5432 },
    ]);
    // The instance stops: its server goes, the member's stays under its own name. One name for both
    // would have been the same server silently readdressed to another machine.
    const stopped = instances.map((r) => (r.name === 'db' ? { ...r, state: 'stopped' as const } : r));
    expect(resolveServers(record, stopped, [dbMember])).toEqual([{ name: 'm-db-5432', addr: '192.168.1.9', port: 5432 }]);
  });

  it('gives every balancer, sorted by name, the same answer whatever the input order', () => {
    const records = [lb('zeta', 'tag:app=web:80'), lb('alpha', 'instance:db:5432')];
    const once = resolveBalancers(records, instances, members);
    expect(once.map((b) => [b.record.name, b.servers.length])).toEqual([
      ['alpha', 1],
      ['zeta', 2],
    ]);
    expect(resolveBalancers([...records].reverse(), [...instances].reverse(), [...members].reverse())).toEqual(once);
  });

  it('follows instances: one launched with the tag joins, one stopped leaves, an address change moves it', () => {
    const record = lb('a', 'tag:app=web:80');
    const names = (list: LbInstance[]) => resolveServers(record, list, []).map((s) => `${s.name}@${s.addr}`);
    expect(names(instances)).toEqual(['i-web1-80@10.0.0.11', 'i-web2-80@10.0.0.12']);
    expect(names([...instances, inst('web4', '10.0.0.14', { app: 'web' })])).toEqual([
      'i-web1-80@10.0.0.11',
      'i-web2-80@10.0.0.12',
      'i-web4-80@10.0.0.14',
    ]);
    expect(names([instances[0], inst('web1', '10.0.0.99', { app: 'web' })])).toEqual(['i-web1-80@10.0.0.99', 'i-web2-80@10.0.0.12']);
    expect(names([{ ...instances[0], state: 'stopped' }])).toEqual([]);
  });
});
