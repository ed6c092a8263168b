/**
 * The gateway's load balancer settings (`roles.gateway.lb`) and the render-time refusals: a
 * balancer on a port the gateway uses itself fails the render, so nothing is written and the
 * running HAProxy keeps its last good config; the firewall opens exactly the listen ports.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import { applyRole } from '../../../roles/apply.js';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { buildGatewayRole } from '../../../roles/gateway/index.js';
import { renderGateway } from '../../../roles/gateway/render.js';
import { parseBalancersCache } from '../../../roles/gateway/lb/render-lb.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { recordingRun } from '../../helpers/recording-run.js';

const T = '2026-12-01T00:00:00Z';
const self: Member = { name: 'gw', addr: '10.88.0.1', port: 7946, tags: { role: 'gateway' }, status: 'alive' };

function lb(name: string, port: number, hosts: string[] = [`${name}.test`]): ResolvedBalancer {
  return {
    record: {
      name,
      listen: { port },
      mode: 'http',
      hosts,
      targets: [],
      health: { kind: 'tcp' },
      tls: 'none',
      balance: 'roundrobin',
      created_at: T,
      updated_at: T,
    },
    servers: [{ name: `i-${name}-1-80`, addr: '10.88.0.20', port: 80 }],
  };
}

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
      ['http_port', 8402],
      ['state_dir', '/var/lib/mammatus/lego'],
    ]);
  });

  it.each([
    [{ lb: { bind: ['eth0'] } }, /^roles\.gateway\.lb\.bind\[0\]: must be an IPv4 or IPv6 address/],
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
      http_port: 8402,
      check_interval: 3600,
    });
  });

  it('takes IPv6 bind addresses and an absolute binary', () => {
    expect(parseGatewayConfig({ lb: { bind: ['::', '203.0.113.5'], binary: '/usr/sbin/haproxy' } }).lb).toMatchObject({
      bind: ['::', '203.0.113.5'],
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

  it.each([
    [22, {}, "port 22 is the gateway's ssh"],
    [53, {}, "port 53 is the gateway's DNS"],
    [67, {}, "port 67 is the gateway's DHCP"],
    [69, {}, "port 69 is the gateway's TFTP"],
    [8776, {}, "port 8776 is the gateway's metadata proxy (metadata.proxy_port)"],
    [9000, { metadata: { proxy_port: 9000 } }, "port 9000 is the gateway's metadata proxy"],
    [8777, {}, "port 8777 is the gateway's boot server (boot.port)"],
    [7946, {}, "port 7946 is the gateway's Serf gossip"],
  ])('refuses a balancer on port %i', (port, config, why) => {
    expect(() => render([lb('web', 80), lb('bad', port)], config)).toThrow(`balancer bad: ${why}`);
  });

  it('takes the boot port when the boot server is off, and follows the node’s own gossip port', () => {
    expect(() => render([lb('web', 8777)], { pxe: { enabled: false } })).not.toThrow();
    expect(() => render([lb('web', 7946)], {}, [{ ...self, port: 7950 }])).not.toThrow();
    expect(() => render([lb('web', 7950)], {}, [{ ...self, port: 7950 }])).toThrow(/Serf gossip/);
  });

  it('an agent that starts again renders from the copy of the balancers until its feed reads', async () => {
    const balancers = [lb('web', 80)];
    const copy = render(balancers).find((f) => f.path === '/etc/mammatus/haproxy/balancers.json')!;
    expect(parseBalancersCache(copy.content)).toEqual(balancers);
    const files = memoryFiles({ [copy.path]: copy.content });
    const spawn = () => {
      throw new Error('no spawn in this test');
    };
    const from = { config: {}, files };
    const lbFeed = () => ({ snapshot: () => undefined, stop: () => Promise.resolve() });
    expect(await buildGatewayRole({ spawn, lbFeed }).balancers!([self], from)).toEqual(balancers);
    // Without a feed to replace it (no registry: mammatus render, registry.enabled false), never.
    expect(await buildGatewayRole({ spawn }).balancers!([self], from)).toBeUndefined();
    expect(
      await buildGatewayRole({ spawn, lbFeed }).balancers!([self], { config: { registry: { enabled: false } }, files }),
    ).toBeUndefined();
    // Disabled, or no copy (a first start): nothing to render from.
    expect(await buildGatewayRole({ spawn, lbFeed }).balancers!([self], { config: { lb: { enabled: false } }, files })).toBeUndefined();
    expect(await buildGatewayRole({ spawn, lbFeed }).balancers!([self], { config: {}, files: memoryFiles() })).toBeUndefined();
    expect(parseBalancersCache('{"not": "ours"}')).toBeUndefined();
    expect(parseBalancersCache(`${copy.content.split('\n')[0]}\n[{"record": 1}]`)).toBeUndefined();
  });

  it('a refused balancer fails the apply at render: nothing written, nothing run, the error in the report', async () => {
    const files = memoryFiles();
    const run = recordingRun();
    const role = buildGatewayRole({
      spawn: () => {
        throw new Error('no spawn in this test');
      },
    });
    const report = await applyRole(
      role,
      { node: 'gw', config: {}, members: [self], balancers: [lb('web', 80), lb('dns', 53)] },
      { run, files, log: pino({ level: 'silent' }), previous: ['/etc/mammatus/haproxy/haproxy.cfg'] },
    );
    expect(report).toMatchObject({ ok: false, error: "render: balancer dns: port 53 is the gateway's DNS", changed: [], removed: [] });
    expect(report.owned).toEqual(['/etc/mammatus/haproxy/haproxy.cfg']);
    expect(files.ops).toEqual([]);
    expect(run.calls).toEqual([]);
  });
});
