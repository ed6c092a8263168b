/**
 * The gateway's load balancer settings (`roles.gateway.lb`) and what the render leaves out: a
 * balancer the gateway cannot serve (a port it uses itself, an IPv6 listen, a conflict) is left out
 * and reported in `lb-left-out`, and every other balancer, dnsmasq and the firewall render as
 * without it; the firewall opens exactly the served listen ports.
 */
import pino from 'pino';
import type { ApplyContext } from '../../../roles/types.js';
import { logLbLeftOut } from '../../../roles/gateway/apply-steps.js';
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { buildGatewayRole } from '../../../roles/gateway/index.js';
import { HAPROXY_MISSING } from '../../../roles/gateway/lb/gateway-haproxy.js';
import { renderGateway } from '../../../roles/gateway/render.js';
import { parseBalancersCache, parseLbLeftOut } from '../../../roles/gateway/lb/render-lb.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { resolvedBalancer } from '../../helpers/lb-resolved.js';

const self: Member = { name: 'gw', addr: '10.88.0.1', port: 7946, tags: { role: 'gateway' }, status: 'alive' };

function lb(name: string, port: number, hosts: string[] = [`${name}.test`], addr?: string): ResolvedBalancer {
  return resolvedBalancer(name, port, [{ name: `i-${name}-1-80`, addr: '10.88.0.20', port: 80 }], {
    hosts,
    listen: { ...(addr ? { addr } : {}), port },
    targets: [{ selector: { kind: 'instance', name }, port: 80 }],
    // As the registry writes them (Date#toISOString): the restart copy is checked as a record.
    created_at: '2026-12-01T00:00:00.000Z',
    updated_at: '2026-12-01T00:00:00.000Z',
  });
}

const noSpawn = () => {
  throw new Error('no spawn in this test');
};
const ctx = (config: Record<string, unknown>, files: ReturnType<typeof memoryFiles>) => ({
  node: 'gw',
  config,
  files,
  log: pino({ level: 'silent' }),
  reconcile: () => undefined,
});

const render = (balancers: ResolvedBalancer[] | undefined, config: Record<string, unknown> = {}, members = [self]) =>
  renderGateway({ node: 'gw', config, members, ...(balancers ? { balancers } : {}) });
const rules = (files: ReturnType<typeof render>) => files.find((f) => f.path.endsWith('iptables.rules'))!.content;

describe('roles.gateway.lb', () => {
  it('has defaults', () => {
    expect(parseGatewayConfig({}).lb).toEqual({
      enabled: true,
      binary: 'haproxy',
      dir: '/etc/mammatus/haproxy',
      run_dir: '/run/mammatus/haproxy',
      bind: ['0.0.0.0'],
      acme: expect.any(Object),
    });
    // The cluster CA (docs/ca.md), trusting the node's copy of the root; hourly checks.
    expect(Object.entries(parseGatewayConfig({}).lb.acme).sort()).toEqual([
      ['ca_file', '/var/lib/mammatus/tls/ca.crt'],
      ['check_interval', 3600],
      ['directory', 'https://ca.mammatus:9000/acme/acme/directory'],
      ['email', 'gateway@mammatus'],
      ['http_port', 402],
      ['state_dir', '/var/lib/mammatus/lego'],
    ]);
  });

  it.each([
    [{ lb: { bind: ['eth0'] } }, /^roles\.gateway\.lb\.bind\[0\]: must be an IPv4 address/],
    // IPv6 would bind every balancer where no firewall rule (iptables is IPv4) stands in front.
    [{ lb: { bind: ['::'] } }, /^roles\.gateway\.lb\.bind\[0\]: must be an IPv4 address .*IPv6 is not filtered/],
    [{ lb: { dir: 'etc/haproxy' } }, /^roles\.gateway\.lb\.dir: must be an absolute path/],
    [{ lb: { binary: 'haproxy -d' } }, /^roles\.gateway\.lb\.binary: must be a program name/],
    [{ lb: { dir: '/x', run_dir: '/x' } }, /^roles\.gateway\.lb\.run_dir: must differ from dir/],
    [{ lb: { port: 80 } }, /^roles\.gateway\.lb/],
    [{ lb: { acme: { directory: 'http://ca.mammatus/dir' } } }, /^roles\.gateway\.lb\.acme\.directory: must be an https URL/],
    [{ lb: { acme: { directory: 'https://ca.mammatus/a b' } } }, /^roles\.gateway\.lb\.acme\.directory: must be an https URL/],
    [{ lb: { acme: { ca_file: 'ca.crt' } } }, /^roles\.gateway\.lb\.acme\.ca_file: must be an absolute path/],
    [{ lb: { acme: { email: 'ops at example' } } }, /^roles\.gateway\.lb\.acme\.email: must be an address/],
    [{ lb: { acme: { http_port: 0 } } }, /^roles\.gateway\.lb\.acme\.http_port/],
    [{ lb: { acme: { check_interval: 5 } } }, /^roles\.gateway\.lb\.acme\.check_interval/],
    [{ lb: { acme: { days: 5 } } }, /^roles\.gateway\.lb\.acme/],
  ])('refuses %j', (raw, why) => {
    expect(() => parseGatewayConfig(raw)).toThrow(why);
  });

  it('takes the acme settings over the defaults, key by key', () => {
    const acme = { directory: 'https://acme.example.org/directory', ca_file: '', email: 'ops@example.org' };
    expect(parseGatewayConfig({ lb: { acme } }).lb.acme).toEqual({
      ...acme,
      state_dir: '/var/lib/mammatus/lego',
      http_port: 402,
      check_interval: 3600,
    });
  });

  it('takes IPv4 bind addresses and an absolute binary', () => {
    expect(parseGatewayConfig({ lb: { bind: ['198.51.100.7', '203.0.113.5'], binary: '/usr/sbin/haproxy' } }).lb).toMatchObject({
      bind: ['198.51.100.7', '203.0.113.5'],
      binary: '/usr/sbin/haproxy',
    });
  });
});

describe('gateway render with balancers', () => {
  it('renders no HAProxy file and opens no port without balancers, not read yet, or lb disabled', () => {
    for (const files of [render(undefined), render([]), render([lb('web', 80)], { lb: { enabled: false } })]) {
      expect(files.some((f) => f.path.startsWith('/etc/mammatus/haproxy/'))).toBe(false);
      expect(rules(files)).not.toMatch(/-i eth0 -p tcp --dport/);
    }
  });

  it('opens exactly the listen ports, tcp, on the WAN interface', () => {
    const files = render([lb('web', 80), lb('api', 80, ['api.test']), lb('admin', 8443)]);
    expect(rules(files).match(/^-A INPUT -i eth0 .*$/gm)).toEqual([
      '-A INPUT -i eth0 -p tcp --dport 80 -j ACCEPT',
      '-A INPUT -i eth0 -p tcp --dport 8443 -j ACCEPT',
    ]);
    expect(files.map((f) => f.path).filter((p) => p.startsWith('/etc/mammatus/haproxy/'))).toEqual([
      '/etc/mammatus/haproxy/balancers.json',
      '/etc/mammatus/haproxy/haproxy.cfg',
      '/etc/mammatus/haproxy/hosts-80.map',
      '/etc/mammatus/haproxy/hosts-8443.map',
    ]);
  });

  const leftOut = (files: ReturnType<typeof render>) =>
    parseLbLeftOut(files.find((f) => f.path === '/var/lib/mammatus/gateway/lb-left-out')?.content);
  const ctl: Member = { ...self, tags: { role: 'gateway,controller' } };

  it.each([
    [22, {}, [self], 'port 22 belongs to ssh on every gateway'],
    [53, {}, [self], "port 53 belongs to the gateway's DNS (dnsmasq) on every gateway"],
    [67, {}, [self], "port 67 belongs to the gateway's DHCP (dnsmasq) on every gateway"],
    [69, {}, [self], "port 69 belongs to the gateway's TFTP (dnsmasq) on every gateway"],
    [8776, {}, [self], "port 8776 is the gateway's metadata proxy (metadata.proxy_port)"],
    [9001, { metadata: { proxy_port: 9001 } }, [self], "port 9001 is the gateway's metadata proxy"],
    [8777, {}, [self], "port 8777 is the gateway's boot server (boot.port)"],
    [7950, {}, [{ ...self, port: 7950 }], "port 7950 is the gateway's Serf gossip"],
    [4222, {}, [ctl], "port 4222 is the gateway's NATS (controller)"],
    [8775, {}, [ctl], "port 8775 is the gateway's metadata service (controller)"],
    [9000, {}, [ctl], "port 9000 is the gateway's CA (controller)"],
    [9324, {}, [ctl], "port 9324 is the gateway's SQS/SNS API (controller)"],
    [3260, {}, [{ ...self, tags: { role: 'gateway,storage' } }], "port 3260 is the gateway's iSCSI portal (storage)"],
  ])('leaves out a balancer on port %i, serving the others and the rest of the gateway', (port, config, members, why) => {
    const files = render([lb('web', 80), lb('bad', port)], config, members);
    expect(leftOut(files)).toEqual([{ name: 'bad', reason: expect.stringContaining(why) as string }]);
    expect(files.find((f) => f.path.endsWith('hosts-80.map'))!.content).toContain('web.test/ lb_web');
    expect(files.find((f) => f.path.endsWith('haproxy.cfg'))!.content).not.toContain('lb_bad');
    expect(rules(files).match(/^-A INPUT -i eth0 .*$/gm)).toEqual(['-A INPUT -i eth0 -p tcp --dport 80 -j ACCEPT']);
    expect(files.some((f) => f.path.endsWith('dnsmasq.conf'))).toBe(true);
  });

  it('takes the controller ports on a gateway that is not a controller, and the boot port with the boot server off', () => {
    expect(leftOut(render([lb('nats', 4222), lb('ca', 9000)]))).toEqual([]);
    expect(leftOut(render([lb('web', 8777)], { pxe: { enabled: false } }))).toEqual([]);
    expect(leftOut(render([lb('web', 7946)], {}, [{ ...self, port: 7950 }]))).toEqual([
      { name: 'web', reason: 'listen: port 7946 belongs to Serf gossip on every gateway' },
    ]);
  });

  it('leaves out an IPv6 listen, the younger of two conflicting balancers, and says why in lb-left-out', () => {
    const older = lb('a-old', 80, ['x.test']);
    const younger: ResolvedBalancer = {
      ...lb('b-new', 80, ['x.test']),
      record: { ...lb('b-new', 80, ['x.test']).record, created_at: '2026-12-02T00:00:00.000Z' },
    };
    const files = render([younger, older, lb('v6', 8080, ['v6.test'], '2001:db8::10'), lb('other', 8081, ['o.test'], '192.0.2.10')]);
    expect(leftOut(files)).toEqual([
      { name: 'b-new', reason: 'lb a-old listens on *:80 for x.test already' },
      { name: 'v6', reason: expect.stringContaining('IPv6 listen addresses are not supported') as string },
    ]);
    expect(rules(files).match(/^-A INPUT -i eth0 .*$/gm)).toEqual([
      '-A INPUT -i eth0 -p tcp --dport 80 -j ACCEPT',
      '-A INPUT -i eth0 -p tcp --dport 8081 -j ACCEPT',
    ]);
    // Nothing left out: no report at all.
    expect(render([lb('web', 80)]).some((f) => f.path.endsWith('lb-left-out'))).toBe(false);
  });

  it('a gateway with only unservable balancers renders no HAProxy file, and still dnsmasq and the firewall', () => {
    const files = render([lb('dns', 53)]);
    expect(files.some((f) => f.path.startsWith('/etc/mammatus/haproxy/'))).toBe(false);
    expect(leftOut(files)).toHaveLength(1);
    expect(files.some((f) => f.path.endsWith('iptables.rules'))).toBe(true);
  });

  it('logs each balancer newly left out by name and why, and each one served again', async () => {
    const lines: { msg: string; balancer: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string; balancer: string }) });
    const file = '/var/lib/mammatus/gateway/lb-left-out';
    const files = memoryFiles({ [file]: 'bad: left out: port 53 is taken\nkept: left out: same\n' });
    const ctx = { files, log, prior: () => 'old: left out: x\nkept: left out: same\n' } as unknown as ApplyContext;
    await logLbLeftOut(ctx, parseGatewayConfig({}));
    expect(lines.map((l) => [l.balancer, l.msg])).toEqual([
      ['bad', 'load balancer bad left out: port 53 is taken'],
      ['old', 'load balancer old no longer left out (served, or gone)'],
    ]);
  });

  it('the feed hook leaves out what the gateway cannot serve, before HAProxy sees it, and opens the feed at once', async () => {
    const opened: string[][] = [];
    const lbFeed = (servers: readonly string[]) => (
      opened.push([...servers]),
      { snapshot: () => [lb('web', 80), lb('dns', 53)], stop: () => Promise.resolve() }
    );
    const role = buildGatewayRole({ spawn: noSpawn, lbFeed });
    const controller: Member = { name: 'c-1', addr: '10.88.0.5', port: 7946, tags: { role: 'controller' }, status: 'alive' };
    const set = await role.balancers!([self, controller], ctx({}, memoryFiles()));
    expect(opened).toEqual([['nats://10.88.0.5:4222']]);
    expect(set?.balancers.map((b) => b.record.name)).toEqual(['web']);
    expect(set?.leftOut).toEqual([{ name: 'dns', reason: "listen: port 53 belongs to the gateway's DNS (dnsmasq) on every gateway" }]);
    const desired = { node: 'gw', config: {}, members: [self], balancers: set!.balancers, balancersLeftOut: set!.leftOut! };
    expect(role.facts!(desired)?.summary).toContain('1 balancer left out (dns)');
  });
  it('leaves every balancer out, saying why, on a gateway without HAProxy (the rest of the role applies)', async () => {
    const lbFeed = () => ({ snapshot: () => [lb('web', 80)], stop: () => Promise.resolve() });
    const role = buildGatewayRole({ spawn: noSpawn, lbFeed });
    const controller: Member = { name: 'c-1', addr: '10.88.0.5', port: 7946, tags: { role: 'controller' }, status: 'alive' };
    const set = await role.balancers!([self, controller], ctx({ lb: { binary: '/nonexistent/haproxy' } }, memoryFiles()));
    expect(set).toEqual({ balancers: [], leftOut: [{ name: 'web', reason: HAPROXY_MISSING }] });
  });
  it('an agent that starts again renders from the copy of the balancers until its feed reads', async () => {
    const balancers = [lb('web', 80)];
    const copy = render(balancers).find((f) => f.path === '/etc/mammatus/haproxy/balancers.json')!;
    expect(parseBalancersCache(copy.content)).toEqual(balancers);
    const files = memoryFiles({ [copy.path]: copy.content });
    const spawn = noSpawn;
    const from = ctx({}, files);
    const lbFeed = () => ({ snapshot: () => undefined, stop: () => Promise.resolve() });
    expect(await buildGatewayRole({ spawn, lbFeed }).balancers!([self], from)).toEqual({ balancers, leftOut: [] });
    // Without a feed to replace it (no registry: mammatus render, registry.enabled false), never.
    expect(await buildGatewayRole({ spawn }).balancers!([self], from)).toBeUndefined();
    expect(await buildGatewayRole({ spawn, lbFeed }).balancers!([self], ctx({ registry: { enabled: false } }, files))).toBeUndefined();
    // Disabled, or no copy (a first start): nothing to render from.
    expect(await buildGatewayRole({ spawn, lbFeed }).balancers!([self], ctx({ lb: { enabled: false } }, files))).toBeUndefined();
    expect(await buildGatewayRole({ spawn, lbFeed }).balancers!([self], ctx({}, memoryFiles()))).toBeUndefined();
    expect(parseBalancersCache('{"not": "ours"}')).toBeUndefined();
    expect(parseBalancersCache(`${copy.content.split('\n')[0]}\n{"record": 1}`)).toBeUndefined();
  });

  it('checks each balancer of the copy as the registry checks a record, dropping the bad ones', () => {
    const good = lb('web', 80);
    const bad = (over: Record<string, unknown>, servers: unknown = good.servers) => ({
      record: { ...good.record, name: 'bad', ...over },
      servers,
    });
    const copy = [
      good,
      { record: 1, servers: [] },
      bad({ name: 'Not A Label' }),
      bad({ hosts: ['a b'] }),
      bad({ path: '/x"y' }),
      bad({ listen: { port: 53 } }),
      bad({ listen: { addr: '2001:db8::1', port: 80 } }),
      bad({ targets: [] }),
      bad({ extra: true }),
      bad({}, [{ name: 'i-x-80', addr: 'not-an-ip', port: 80 }]),
      bad({}, [{ name: 'i-x-80', addr: '10.0.0.1', port: 0 }]),
      bad({}, 'none'),
    ];
    const header = render([good])
      .find((f) => f.path.endsWith('balancers.json'))!
      .content.split('\n')[0];
    expect(parseBalancersCache(`${header}\n${JSON.stringify(copy)}`)).toEqual([good]);
  });

  it('a restored copy gives way to the feed as soon as it reads, even while no apply succeeded yet', async () => {
    const copy = render([lb('old', 80)]).find((f) => f.path === '/etc/mammatus/haproxy/balancers.json')!;
    const registry: { now?: ResolvedBalancer[] } = {};
    const lbFeed = () => ({ snapshot: () => registry.now, stop: () => Promise.resolve() });
    const role = buildGatewayRole({ spawn: noSpawn, lbFeed });
    const members = [self, { name: 'c-1', addr: '10.88.0.5', port: 7946, tags: { role: 'controller' }, status: 'alive' } as Member];
    const from = ctx({}, memoryFiles({ [copy.path]: copy.content }));
    expect((await role.balancers!(members, from))?.balancers.map((b) => b.record.name)).toEqual(['old']);
    registry.now = [lb('new', 80)];
    expect((await role.balancers!(members, from))?.balancers.map((b) => b.record.name)).toEqual(['new']);
  });
});
