/**
 * Load balancer records: the flag parsers, every refusal of the record check (each names its
 * field), and which balancers can share a listener.
 */
import { describe, expect, it } from 'vitest';
import type { LoadBalancerRecord } from '../../../core/lb-record.js';
import { conflicts, olderFirst, withoutConflicts } from '../../../core/lb-conflicts.js';
import {
  checkLoadBalancerRecord,
  formatListen,
  formatTarget,
  LbRecordError,
  makeLoadBalancerRecord,
  parseHealth,
  parseListen,
  parseTargetSpec,
  type LoadBalancerInput,
} from '../../../src/lb/record.js';

const NOW = new Date('2026-12-07T00:00:00Z');
const web: LoadBalancerInput = {
  name: 'web',
  listen: { port: 80 },
  mode: 'http',
  hosts: ['www.example.com'],
  targets: [{ selector: { kind: 'tag', key: 'app', value: 'web' }, port: 8080 }],
};
const make = (over: Partial<LoadBalancerInput> = {}, at = NOW): LoadBalancerRecord => makeLoadBalancerRecord({ ...web, ...over }, at);

describe('lb flag parsers', () => {
  it('reads targets: the port after the last colon, the selector before it', () => {
    expect(parseTargetSpec('instance:web1:80')).toEqual({ selector: { kind: 'instance', name: 'web1' }, port: 80 });
    expect(parseTargetSpec('tag:app=web:8080')).toEqual({ selector: { kind: 'tag', key: 'app', value: 'web' }, port: 8080 });
    expect(parseTargetSpec('tag:k8s.io:tier=a=b:1')).toEqual({ selector: { kind: 'tag', key: 'k8s.io:tier', value: 'a=b' }, port: 1 });
    expect(parseTargetSpec('member:st1.lab:65535')).toEqual({ selector: { kind: 'member', name: 'st1.lab' }, port: 65535 });
    expect(formatTarget(parseTargetSpec('tag:app=web:8080'))).toBe('tag:app=web:8080');
  });

  it.each([
    ['web:80', /not instance:NAME, tag:KEY=VALUE or member:NAME/],
    ['instance:web', /not a port: "web"/],
    ['instance:web:0', /outside 1–65535/],
    ['instance:web:65536', /outside 1–65535/],
    ['instance:web:8o', /not a port/],
    ['instance:Web:80', /instance name is a DNS label/],
    ['tag:app:80', /not instance:NAME, tag:KEY=VALUE/],
    ['tag:=web:80', /a tag key is/],
    ['tag:app=:80', /value must be 1–256/],
    ['member::80', /not a Serf node name/],
    ['80', /not SELECTOR:PORT/],
  ])('refuses target %s', (text, why) => {
    expect(() => parseTargetSpec(text)).toThrow(LbRecordError);
    expect(() => parseTargetSpec(text)).toThrow(why);
  });

  it('reads listen addresses: a port, IPv4:port', () => {
    expect(parseListen('80')).toEqual({ port: 80 });
    expect(parseListen('192.0.2.10:443')).toEqual({ addr: '192.0.2.10', port: 443 });
    expect(formatListen({ port: 80 })).toBe('*:80');
    expect(formatListen({ addr: '192.0.2.10', port: 443 })).toBe('192.0.2.10:443');
  });

  it.each([
    ['', /not a port/],
    ['0', /outside/],
    ['70000', /outside/],
    ['2001:db8::1:80', /IPv6 listen addresses are not supported \(the gateway's firewall is IPv4 only\)/],
    ['example.com:80', /"example.com" is not an IPv4 address/],
    ['300.1.1.1:80', /"300.1.1.1" is not an IPv4 address/],
    ['0.0.0.0:80', /leave the address out/],
    ['[::]:80', /IPv6 listen addresses are not supported \(the gateway's firewall is IPv4 only\)/],
    ['[2001:db8::10]:443', /IPv6 listen addresses are not supported \(the gateway's firewall is IPv4 only\)/],
    ['[fe80::1%eth0]:80', /IPv6 listen addresses are not supported \(the gateway's firewall is IPv4 only\)/],
    ['[192.0.2.1]:80', /IPv6 listen addresses are not supported \(the gateway's firewall is IPv4 only\)/],
    ['127.0.0.1:80', /127.0.0.1 is loopback/],
    ['127.1.2.3:80', /is loopback/],
    ['[::1]:80', /IPv6 listen addresses are not supported \(the gateway's firewall is IPv4 only\)/],
    ['[::ffff:192.0.2.1]:80', /IPv6 listen addresses are not supported \(the gateway's firewall is IPv4 only\)/],
    ['22', /port 22 belongs to ssh on every gateway/],
    ['53', /belongs to the gateway's DNS/],
    ['67', /belongs to the gateway's DHCP/],
    ['69', /belongs to the gateway's TFTP/],
    ['7373', /belongs to Serf RPC/],
    ['10.0.0.1:7946', /Serf gossip/],
  ])('refuses listen %j', (text, why) => {
    expect(() => parseListen(text)).toThrow(why);
  });

  it('reads health checks', () => {
    expect(parseHealth('tcp')).toEqual({ kind: 'tcp' });
    expect(parseHealth('/healthz')).toEqual({ kind: 'http', path: '/healthz' });
    expect(() => parseHealth('healthz')).toThrow(/not a path/);
    expect(() => parseHealth('/a b')).toThrow(/no spaces/);
    expect(parseHealth('/up/AZaz09-._~!&()*+,=:@%2F')).toEqual({ kind: 'http', path: '/up/AZaz09-._~!&()*+,=:@%2F' });
  });

  // What HAProxy's config parser acts on: `"${SECRET}"` expands an environment variable, `\r\n`
  // escapes add headers to the health check, a quote breaks `haproxy -c` for every balancer.
  const hostile = ['/"${SECRET}"', '/${HOME}', '/x\\r\\nX-Injected: 1', "/'", '/`id`', '/a|b', '/a;b', '/{x}', '/a<b', '/%zz', '/%'];
  it.each(hostile)('refuses the path %j, on parse and on read', (p) => {
    expect(() => parseHealth(p)).toThrow(/^health: .* must start with \/ and hold only/);
    expect(() => make({ path: p })).toThrow(/^path: /);
    const r = make() as unknown as Record<string, unknown>;
    expect(() => checkLoadBalancerRecord({ ...r, path: p })).toThrow(/^path: /);
    expect(() => checkLoadBalancerRecord({ ...r, health: { kind: 'http', path: p } })).toThrow(/^health: /);
  });
});

describe('lb record check', () => {
  it('fills defaults, lower-cases hosts, and accepts its own output again', () => {
    const r = make({ hosts: ['WWW.Example.com'] });
    expect(r).toEqual({
      ...web,
      hosts: ['www.example.com'],
      health: { kind: 'tcp' },
      tls: 'none',
      balance: 'roundrobin',
      created_at: NOW.toISOString(),
      updated_at: NOW.toISOString(),
    });
    expect(checkLoadBalancerRecord(JSON.parse(JSON.stringify(r)))).toEqual(r);
    const tcp = make({ mode: 'tcp', hosts: ['db.example.com'], tls: 'passthrough', listen: { port: 443 } });
    expect(tcp.tls).toBe('passthrough');
    expect(make({ hosts: [], path: '/api', health: { kind: 'http', path: '/up' } }).path).toBe('/api');
  });

  const tags = (n: number) => Array.from({ length: n }, (_, i) => ({ selector: { kind: 'instance' as const, name: `i${i}` }, port: 80 }));
  it.each<[string, Partial<LoadBalancerInput> | Record<string, unknown>, RegExp]>([
    ['a name that is no DNS label', { name: 'Web_1' }, /^name: must be a DNS label/],
    ['an upper-case or malformed host', { hosts: ['-bad.example'] }, /^hosts: "-bad.example" is not a lower-case DNS name/],
    ['a wildcard host', { hosts: ['*.example.com'] }, /^hosts: \*\.example\.com: wildcards are not supported/],
    ['a host twice', { hosts: ['a.example', 'A.example'] }, /^hosts: entries must be unique/],
    ['33 hosts', { hosts: Array.from({ length: 33 }, (_, i) => `h${i}.example`) }, /^hosts: at most 32/],
    ['a path without /', { path: 'api' }, /^path: "api" must start with \//],
    ['a path with a space', { path: '/a b' }, /^path: .*no spaces/],
    ['a path with ?', { path: '/a?b' }, /^path: /],
    ['a path in tcp mode', { mode: 'tcp', hosts: [], path: '/api' }, /^path: a path prefix needs mode http/],
    ['passthrough in http mode', { tls: 'passthrough' }, /^tls: passthrough needs mode tcp/],
    ['passthrough without hosts', { mode: 'tcp', hosts: [], tls: 'passthrough' }, /^hosts: passthrough routes by SNI/],
    ['acme in tcp mode', { mode: 'tcp', tls: 'acme' }, /^tls: acme needs mode http/],
    ['acme without hosts', { hosts: [], tls: 'acme' }, /^hosts: acme needs the names/],
    ['acme for a one-label name', { hosts: ['intranet'], tls: 'acme' }, /^hosts: intranet: acme cannot get a certificate/],
    ['acme on port 80 (http-01 needs plain HTTP there)', { tls: 'acme', listen: { port: 80 } }, /^listen: acme cannot listen on port 80/],
    ['acme for an all-numeric name', { hosts: ['10.0.0.1'], tls: 'acme' }, /^hosts: 10.0.0.1: acme cannot get a certificate/],
    ['hosts on plain tcp', { mode: 'tcp' }, /^hosts: plain TCP carries no host name/],
    [
      'an HTTP health check in tcp mode',
      { mode: 'tcp', hosts: [], health: { kind: 'http', path: '/' } },
      /^health: an HTTP health check needs mode http/,
    ],
    ['a health path without /', { health: { kind: 'http', path: 'up' } }, /^health: "up" must start with \//],
    ['no target', { targets: [] }, /^targets: at least one target is required/],
    ['33 targets', { targets: tags(33) }, /^targets: at most 32/],
    ['a target twice', { targets: [...tags(1), ...tags(1)] }, /^targets: entries must be unique/],
    ['a target port 0', { targets: [{ selector: { kind: 'member', name: 'n1' }, port: 0 }] }, /^targets\[0\]: port must be 1–65535/],
    ['an unknown mode', { mode: 'udp' }, /^mode: must be http or tcp/],
    ['an unknown tls', { tls: 'yes' }, /^tls: must be none, acme, passthrough/],
    ['an unknown balance', { balance: 'random' }, /^balance: must be roundrobin or leastconn/],
    ['a reserved port', { listen: { port: 53 } }, /^listen: port 53 belongs to the gateway's DNS/],
    ['a listen addr that is no IP', { listen: { addr: 'gw', port: 80 } }, /^listen: "gw" is not an IPv4 address/],
    ['a listen addr 0.0.0.0', { listen: { addr: '0.0.0.0', port: 80 } }, /^listen: leave the address out/],
    ['a listen addr ::', { listen: { addr: '::', port: 80 } }, /^listen: :: ?: IPv6 listen addresses are not supported/],
    ['a loopback listen addr', { listen: { addr: '127.0.0.1', port: 80 } }, /^listen: 127.0.0.1 is loopback/],
    [
      'an IPv6 listen addr',
      { listen: { addr: '2001:db8::10', port: 80 } },
      /^listen: 2001:db8::10: IPv6 listen addresses are not supported/,
    ],
  ])('refuses %s', (_, over, why) => {
    expect(() => make(over as Partial<LoadBalancerInput>)).toThrow(LbRecordError);
    expect(() => make(over as Partial<LoadBalancerInput>)).toThrow(why);
  });

  it('refuses foreign values from the bucket: unknown fields, bad selectors, bad times', () => {
    const r = make() as unknown as Record<string, unknown>;
    expect(() => checkLoadBalancerRecord({ ...r, weight: 1 })).toThrow(/^weight: unknown field/);
    expect(() => checkLoadBalancerRecord({ ...r, targets: [{ selector: { kind: 'dns', name: 'x' }, port: 80 }] })).toThrow(
      /^targets\[0\]: selector must be/,
    );
    expect(() => checkLoadBalancerRecord({ ...r, created_at: 'yesterday' })).toThrow(/^created_at: must be an ISO 8601 UTC time/);
    // One spelling per instant, so every reader orders records alike.
    for (const t of ['2026-12-07T00:00:00Z', '2026-12-07T01:00:00+01:00', '2026-12-07', 'Mon, 07 Dec 2026 00:00:00 GMT'])
      expect(() => checkLoadBalancerRecord({ ...r, created_at: t }), t).toThrow(/^created_at: /);
    expect(() => checkLoadBalancerRecord({ ...r, updated_at: '2026-12-07T00:00:00Z' })).toThrow(/^updated_at: /);
    expect(() => checkLoadBalancerRecord({ ...r, health: { kind: 'http', path: '/up', timeout: 5 } })).toThrow(
      /^health: an http check has kind and path, no other field/,
    );
    expect(() => checkLoadBalancerRecord({ ...r, listen: { port: 80, host: 'x' } })).toThrow(/^listen\.host: unknown field/);
    expect(() => checkLoadBalancerRecord({ ...r, listen: { addr: 7, port: 80 } })).toThrow(/^listen: addr must be an IPv4 address/);
    expect(() => checkLoadBalancerRecord({ ...r, listen: { addr: 'fe80::1%eth0', port: 80 } })).toThrow(/^listen: .*IPv6 listen addresses/);
    expect(() => checkLoadBalancerRecord(null)).toThrow(/^record: must be an object/);
  });
});

describe('lb conflicts', () => {
  const http = (name: string, over: Partial<LoadBalancerInput> = {}) => make({ name, ...over });
  const tcp = (name: string, over: Partial<LoadBalancerInput> = {}) =>
    make({ name, mode: 'tcp', hosts: [], listen: { port: 5432 }, ...over });
  const sni = (name: string, hosts: string[]) => make({ name, mode: 'tcp', tls: 'passthrough', hosts, listen: { port: 443 } });

  it('lets different hosts, paths, ports and addresses share a gateway', () => {
    const stored = [http('a'), http('b', { hosts: ['b.example'] }), http('any', { hosts: [] }), sni('s1', ['db.example'])];
    expect(conflicts(stored, http('c', { hosts: ['c.example'] }))).toEqual([]);
    expect(conflicts(stored, http('api', { path: '/api' }))).toEqual([]);
    expect(conflicts(stored, http('other-port', { listen: { port: 8080 } }))).toEqual([]);
    expect(conflicts(stored, sni('s2', ['mq.example']))).toEqual([]);
    expect(conflicts([tcp('pg')], tcp('pg2', { listen: { addr: '192.0.2.2', port: 5433 } }))).toEqual([]);
    // Its own name is the record it replaces, not a rival.
    expect(conflicts([http('a')], http('a'))).toEqual([]);
  });

  it('takes no path and the path / for the same routes (both are every path)', () => {
    expect(conflicts([http('a')], http('b', { path: '/' }))).toEqual([expect.stringMatching(/for www.example.com already$/)]);
    expect(conflicts([http('a', { hosts: [] })], http('b', { hosts: [], path: '/' }))).toEqual([
      expect.stringMatching(/as the catch-all: there can be one per port$/),
    ]);
  });

  it.each<[string, LoadBalancerRecord[], LoadBalancerRecord, RegExp]>([
    [
      'the same host',
      [http('a')],
      http('b', { hosts: ['x.example', 'www.example.com'] }),
      /lb a listens on \*:80 for www.example.com already/,
    ],
    ['the same host and path', [http('a', { path: '/api' })], http('b', { path: '/api' }), /for www.example.com under \/api already/],
    ['two catch-alls', [http('a', { hosts: [] })], http('b', { hosts: [] }), /as the catch-all: there can be one per port/],
    ['another mode on the port', [http('a')], tcp('b', { listen: { port: 80 } }), /in mode http: balancers sharing a port share its mode/],
    [
      'another TLS kind on the port',
      [http('a', { listen: { port: 443 }, tls: 'acme' })],
      http('b', { hosts: ['b.example'], listen: { port: 443 } }),
      /with tls acme/,
    ],
    ['a second plain TCP balancer', [tcp('pg')], tcp('pg2'), /as plain TCP, which cannot be shared/],
    [
      'plain TCP on an address inside a wildcard',
      [tcp('pg')],
      tcp('pg2', { listen: { addr: '192.0.2.1', port: 5432 } }),
      /lb pg listens on \*:5432: balancers on one port share its frontend/,
    ],
    [
      'two explicit addresses on one port',
      [tcp('pg', { listen: { addr: '192.0.2.1', port: 5432 } })],
      tcp('pg2', { listen: { addr: '192.0.2.2', port: 5432 } }),
      /lb pg listens on 192.0.2.1:5432: balancers on one port share its frontend/,
    ],
    ['the same SNI name', [sni('s1', ['db.example'])], sni('s2', ['db.example']), /for db.example already/],
  ])('refuses %s', (_, stored, candidate, why) => {
    const found = conflicts(stored, candidate);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(why);
  });

  it('orders by the parsed time, not its text, then by name', () => {
    // toISOString writes years past 9999 as +010000-…, which sorts before 2026-… as text.
    const far = checkLoadBalancerRecord({ ...make({ name: 'a' }), created_at: new Date('+010000-01-01T00:00:00Z').toISOString() });
    const now = make({ name: 'z' });
    expect(far.created_at < now.created_at).toBe(true);
    expect([far, now].sort(olderFirst).map((r) => r.name)).toEqual(['z', 'a']);
    expect(withoutConflicts([far, now]).kept.map((r) => r.name)).toEqual(['z']);
    expect(withoutConflicts([make({ name: 'b' }), make({ name: 'a' })]).kept.map((r) => r.name)).toEqual(['a']);
  });

  it('keeps the earlier of two records that raced past the check', () => {
    const later = new Date(NOW.getTime() + 1000);
    const { kept, dropped } = withoutConflicts([
      make({ name: 'z' }),
      make({ name: 'a' }, later),
      make({ name: 'b', hosts: ['b.example'] }, later),
    ]);
    expect(kept.map((r) => r.name)).toEqual(['b', 'z']);
    expect(dropped.map((d) => [d.record.name, d.why])).toEqual([['a', expect.stringMatching(/lb z listens on/)]]);
  });
});
