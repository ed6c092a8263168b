/**
 * The gateway renderers against golden files plus, as assertions, the traps
 * that broke dnsmasq and iptables in real runs. Each `__fixtures__/gateway/<case>.yaml` is a DesiredState; every rendered file is
 * compared with `__golden__/gateway/<case>/<absolute path>`. Regenerate with
 * `npx vitest run test/roles/gateway -u` and review the golden diff like code.
 */
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parse } from 'yaml';
import type { InstanceSummary, Member } from '../../../core/contracts.js';
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import type { DesiredState, RenderedFile } from '../../../roles/types.js';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { renderDnsmasqConf } from '../../../roles/gateway/render-dnsmasq.js';
import { renderHostsFiles } from '../../../roles/gateway/render-hosts.js';
import { renderBaseline, renderIptables, renderSysctl } from '../../../roles/gateway/render-iptables.js';
import { renderGateway } from '../../../roles/gateway/render.js';

const HEADER = '# managed by mammatus role=gateway\n';
const fixturesDir = join(import.meta.dirname, '..', '__fixtures__', 'gateway');
const goldenRoot = join(import.meta.dirname, '..', '__golden__', 'gateway');
const cases = readdirSync(fixturesDir)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length))
  .sort();

function loadFixture(name: string): DesiredState {
  const raw = parse(readFileSync(join(fixturesDir, `${name}.yaml`), 'utf8')) as {
    node: string;
    config?: Record<string, unknown>;
    members?: Member[];
    instances?: InstanceSummary[];
    balancers?: ResolvedBalancer[];
  };
  // The agent hands roles members sorted by name; do the same so fixtures can be written in any order.
  const members = [...(raw.members ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1));
  const extra = { ...(raw.instances ? { instances: raw.instances } : {}), ...(raw.balancers ? { balancers: raw.balancers } : {}) };
  return { node: raw.node, config: raw.config ?? {}, members, ...extra };
}

function member(name: string, addr: string, status: Member['status'] = 'alive', port = 7946): Member {
  return { name, addr, port, tags: {}, status };
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => `/${relative(dir, join(e.parentPath, e.name))}`);
}

function fileAt(files: RenderedFile[], path: string): RenderedFile {
  const file = files.find((f) => f.path === path);
  if (!file) throw new Error(`not rendered: ${path}`);
  return file;
}

describe('gateway role goldens', () => {
  it('has the three fixture cases', () => {
    expect(cases).toEqual(expect.arrayContaining(['full', 'minimal', 'no-tftp-pxe', 'rpi']));
  });

  it.each(cases)('%s renders the golden files', async (name) => {
    const files = renderGateway(loadFixture(name));
    for (const file of files) {
      await expect(file.content).toMatchFileSnapshot(join(goldenRoot, name, file.path));
    }
  });

  it.each(cases)('%s has no stale golden files', async (name) => {
    // A golden the role no longer renders would otherwise linger unnoticed after a rename.
    const rendered = new Set(renderGateway(loadFixture(name)).map((f) => f.path));
    const stale = (await listFiles(join(goldenRoot, name))).filter((p) => !rendered.has(p));
    expect(stale).toEqual([]);
  });
});

describe('renderGateway', () => {
  it.each(cases)('%s is deterministic, sorted by path, and every file carries the header', (name) => {
    const desired = loadFixture(name);
    const files = renderGateway(desired);
    // Same input, same output; member order must not matter either.
    expect(renderGateway(desired)).toEqual(files);
    expect(renderGateway({ ...desired, members: [...desired.members].reverse() })).toEqual(files);
    const paths = files.map((f) => f.path);
    expect(paths).toEqual([...paths].sort());
    expect(new Set(paths).size).toBe(paths.length);
    // An iPXE script's first line must be #!ipxe: the header comes second there.
    for (const file of files) expect(file.content.replace(/^#!ipxe\n/, '').startsWith(HEADER), file.path).toBe(true);
  });

  it('gives the ruleset mode 0600 and the other files 0644', () => {
    const files = renderGateway(loadFixture('minimal'));
    for (const file of files) {
      expect(file.mode).toBe(file.path === '/etc/mammatus/gateway/iptables.rules' ? 0o600 : 0o644);
    }
  });

  it('renders the default paths for a {} config', () => {
    expect(renderGateway(loadFixture('minimal')).map((f) => f.path)).toEqual([
      '/etc/mammatus/gateway/boot-server.yaml',
      '/etc/mammatus/gateway/boot.ipxe',
      '/etc/mammatus/gateway/dnsmasq.conf',
      '/etc/mammatus/gateway/iptables.rules',
      '/etc/sysctl.d/60-mammatus-gateway.conf',
      '/var/lib/mammatus/gateway/hosts.d/gw-1',
      '/var/lib/mammatus/gateway/hosts.d/web-1',
      '/var/lib/mammatus/gateway/left-out',
      '/var/lib/mammatus/gateway/members',
    ]);
  });

  it('opens the Serf port this node advertises, or 7946 when it is not a member yet', () => {
    const desired = loadFixture('full');
    const rules = fileAt(renderGateway(desired), '/etc/mammatus/gw/rules.v4').content;
    expect(rules).toContain('-A INPUT -i lan0 -p udp --dport 7947 -j ACCEPT');
    const alone = fileAt(renderGateway({ ...desired, members: [] }), '/etc/mammatus/gw/rules.v4').content;
    expect(alone).toContain('-A INPUT -i lan0 -p tcp --dport 7946 -j ACCEPT');
  });

  it('throws a keyed error for an invalid config', () => {
    expect(() => renderGateway({ node: 'n', config: { lan: { address: 'nope' } }, members: [] })).toThrow(
      /^roles\.gateway\.lan\.address: /,
    );
  });
});

describe('renderDnsmasqConf for a Raspberry Pi', () => {
  const cfg = parseGatewayConfig({});
  const conf = renderDnsmasqConf(cfg, { rpi: true });

  it('answers tag:rpi with option 43 "Raspberry Pi Boot" (a CSA 0 pxe-service, no boot file) and the TFTP server', () => {
    expect(conf).toContain('\npxe-service=tag:rpi,0,"Raspberry Pi Boot"\n');
    expect(conf).toContain('\ndhcp-option=tag:rpi,option:tftp-server,10.88.0.1\n');
    // The Pi claims arch 0 like a BIOS PC: it must not be handed undionly.kpxe.
    expect(conf).toContain('\ndhcp-boot=tag:bios,tag:!ipxe,tag:!rpi,undionly.kpxe\n');
  });

  it('adds nothing without a Pi: a pxe-service line would give every PXE client option 43', () => {
    const plain = renderDnsmasqConf(cfg);
    expect(plain).not.toMatch(/pxe-service|tag:!?rpi/);
    expect(renderDnsmasqConf(cfg, { rpi: false })).toBe(plain);
    // PXE off: no Pi lines either (the Pi is answered like any DHCP client).
    expect(renderDnsmasqConf(parseGatewayConfig({ pxe: { enabled: false } }), { rpi: true })).not.toContain('rpi');
  });

  it('renderGateway adds them only while a served host is a Pi', () => {
    const desired = loadFixture('rpi');
    const dnsmasq = (d: DesiredState) => fileAt(renderGateway(d), '/etc/mammatus/gateway/dnsmasq.conf').content;
    expect(dnsmasq(desired)).toContain('pxe-service=tag:rpi');
    const noPi = { ...desired, instances: desired.instances!.filter((i) => !i.rpi) };
    expect(dnsmasq(noPi)).not.toContain('pxe-service');
    // A Pi left out (its name is the gateway's) is not served: no Pi lines for it.
    const leftOut = { ...desired, instances: [{ ...desired.instances![0], name: 'gateway' }] };
    expect(dnsmasq(leftOut)).not.toContain('pxe-service');
  });
});

describe('renderDnsmasqConf', () => {
  const configs = cases.map((name) => [name, parseGatewayConfig(loadFixture(name).config)] as const);

  it.each(configs)('%s never uses address= (AAAA for the name would be NXDOMAIN)', (_name, cfg) => {
    expect(renderDnsmasqConf(cfg)).not.toContain('address=');
  });

  it.each(configs)('%s puts tag:!ipxe on every firmware dhcp-boot line', (_name, cfg) => {
    const boots = renderDnsmasqConf(cfg)
      .split('\n')
      .filter((l) => l.startsWith('dhcp-boot='));
    for (const line of boots.filter((l) => !l.startsWith('dhcp-boot=tag:ipxe,'))) expect(line).toContain(',tag:!ipxe,');
    expect(boots.length).toBe(cfg.pxe.enabled ? 3 + (cfg.pxe.ipxe_script || cfg.boot.enabled ? 1 : 0) : 0);
  });

  it("hands iPXE the boot server's stub, pxe.ipxe_script instead when set, and nothing without either", () => {
    expect(renderDnsmasqConf(parseGatewayConfig({}))).toContain('\ndhcp-boot=tag:ipxe,http://10.88.0.1:8777/boot.ipxe\n');
    expect(renderDnsmasqConf(parseGatewayConfig({ boot: { port: 8800 } }))).toContain(
      '\ndhcp-boot=tag:ipxe,http://10.88.0.1:8800/boot.ipxe\n',
    );
    const cfg = parseGatewayConfig({ pxe: { ipxe_script: 'http://10.88.0.10/boot.ipxe' } });
    expect(renderDnsmasqConf(cfg)).toContain('\ndhcp-boot=tag:ipxe,http://10.88.0.10/boot.ipxe\n');
    expect(renderDnsmasqConf(cfg).match(/tag:ipxe,/g)).toHaveLength(1);
    expect(renderDnsmasqConf(parseGatewayConfig({ boot: { enabled: false } }))).not.toContain('tag:ipxe,');
  });

  it('sends RAs only (no DHCPv6, router lifetime 0) on the LAN with the boot server, none without', () => {
    const conf = renderDnsmasqConf(parseGatewayConfig({}));
    expect(conf).toMatch(/\nenable-ra\ndhcp-range=::,constructor:eth1,ra-only\nra-param=eth1,0,0\n/);
    expect(renderDnsmasqConf(parseGatewayConfig({ boot: { enabled: false } }))).not.toMatch(/enable-ra|ra-only|ra-param/);
  });

  it('opens the boot port on the LAN interface only, and not when the server is off', () => {
    const on = fileAt(renderGateway({ node: 'n', config: {}, members: [] }), '/etc/mammatus/gateway/iptables.rules').content;
    expect(on.match(/--dport 8777 /g)).toEqual(['--dport 8777 ']);
    expect(on).toContain('-A INPUT -i eth1 -p tcp --dport 8777 -j ACCEPT');
    const off = fileAt(
      renderGateway({ node: 'n', config: { boot: { enabled: false } }, members: [] }),
      '/etc/mammatus/gateway/iptables.rules',
    );
    expect(off.content).not.toContain('8777');
  });

  it('names the TFTP user explicitly with tftp-secure, and drops TFTP entirely when disabled', () => {
    const on = renderDnsmasqConf(parseGatewayConfig({ tftp: { user: 'dnsmasq' } }));
    expect(on).toMatch(/\nenable-tftp\ntftp-root=\/srv\/tftp\ntftp-secure\nuser=dnsmasq\n/);
    const off = renderDnsmasqConf(parseGatewayConfig({ pxe: { enabled: false }, tftp: { enabled: false } }));
    expect(off).not.toMatch(/tftp|^user=|dhcp-match|dhcp-userclass/m);
  });

  it('answers the domain locally and forwards the rest to each upstream in order', () => {
    const conf = renderDnsmasqConf(parseGatewayConfig({ upstream_dns: ['9.9.9.9', '1.0.0.1'] }));
    expect(conf).toContain('\nno-resolv\nserver=9.9.9.9\nserver=1.0.0.1\n');
    expect(conf).toContain('\nlocal=/mammatus/\n');
    expect(conf).toContain('\nhost-record=gateway.mammatus,gateway,10.88.0.1\n');
    expect(conf).not.toMatch(/^pid-file=/m);
  });
});

describe('renderHostsFiles', () => {
  const cfg = parseGatewayConfig({});
  const dir = '/var/lib/mammatus/gateway/hosts.d';

  it('writes `IP name.domain name` for each alive member, lowercased', () => {
    const files = renderHostsFiles(cfg, [member('Web-1', '10.88.0.11'), member('db', '10.88.0.12', 'failed')]);
    expect(files).toEqual([{ path: `${dir}/web-1`, content: `${HEADER}10.88.0.11 web-1.mammatus web-1\n`, mode: 0o644 }]);
  });

  it('skips names that cannot be DNS labels, the reserved name gateway, and bad addresses', () => {
    const files = renderHostsFiles(cfg, [
      member('bad_name!', '10.88.0.20'),
      member('a.b', '10.88.0.21'),
      member('-x', '10.88.0.22'),
      member('gateway', '10.88.0.23'),
      member('evil', '10.88.0.24\n10.88.0.1 gateway.mammatus'),
      member('ok', '10.88.0.25'),
    ]);
    expect(files.map((f) => f.path)).toEqual([`${dir}/ok`]);
  });

  it('renders instances the same way; a member keeps a name an instance also claims', () => {
    const files = renderHostsFiles(
      cfg,
      [member('web-1', '10.88.0.11')],
      [
        { name: 'vm-2', ip: '10.88.0.102' },
        { name: 'web-1', ip: '10.88.0.150' },
      ],
    );
    expect(files.map((f) => f.content)).toEqual([
      `${HEADER}10.88.0.102 vm-2.mammatus vm-2\n`,
      `${HEADER}10.88.0.11 web-1.mammatus web-1\n`,
    ]);
  });
});

describe('renderIptables', () => {
  it.each(cases)('%s has a *filter and a *nat block, each ending with COMMIT', (name) => {
    const rules = renderIptables(parseGatewayConfig(loadFixture(name).config));
    const blocks = rules.split(/^(?=\*)/m).slice(1);
    expect(blocks.map((b) => b.split('\n')[0])).toEqual(['*filter', '*nat']);
    for (const block of blocks) expect(block.trimEnd().endsWith('\nCOMMIT')).toBe(true);
    expect(rules.endsWith('COMMIT\n')).toBe(true);
  });

  it('redirects the metadata address to the local proxy instead of DNAT to a LAN host', () => {
    const rules = renderIptables(parseGatewayConfig({ metadata: { proxy_port: 9000 } }));
    expect(rules).toContain('-A PREROUTING -i eth1 -d 169.254.169.254/32 -p tcp --dport 80 -j REDIRECT --to-ports 9000\n');
    expect(rules).toContain('-A INPUT -i eth1 -p tcp --dport 9000 -j ACCEPT\n');
    expect(rules).not.toMatch(/169\.254\.169\.254.*DNAT/);
  });

  it('opens TFTP and SSH only when enabled', () => {
    const off = renderIptables(
      parseGatewayConfig({ pxe: { enabled: false }, tftp: { enabled: false }, firewall: { ssh_from_lan: false } }),
    );
    expect(off).not.toMatch(/--dport (69|22) /);
    const on = renderIptables(parseGatewayConfig({}));
    expect(on).toContain('-A INPUT -i eth1 -p udp --dport 69 -j ACCEPT\n');
    expect(on).toContain('-A INPUT -i eth1 -p tcp --dport 22 -j ACCEPT\n');
  });

  it('renders each port forward as a WAN DNAT plus a FORWARD accept for DNATed traffic', () => {
    const cfg = parseGatewayConfig({ firewall: { port_forwards: [{ proto: 'tcp', port: 443, to: '10.88.0.10:8443' }] } });
    const rules = renderIptables(cfg);
    expect(rules).toContain('-A PREROUTING -i eth0 -p tcp --dport 443 -j DNAT --to-destination 10.88.0.10:8443\n');
    expect(rules).toContain('-A FORWARD -i eth0 -o eth1 -d 10.88.0.10/32 -p tcp --dport 8443 -m conntrack --ctstate DNAT -j ACCEPT\n');
    expect(rules).toContain('-A POSTROUTING -o eth0 -s 10.88.0.0/24 -j MASQUERADE\n');
  });
});

describe('renderBaseline and renderSysctl', () => {
  it('names both tables with ACCEPT policies and no rules, so a rollback really opens them', () => {
    expect(renderBaseline()).toBe(
      `${HEADER}*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n` +
        '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n',
    );
  });

  it('turns on IPv4 forwarding', () => {
    expect(renderSysctl()).toBe(`${HEADER}net.ipv4.ip_forward=1\n`);
  });
});
