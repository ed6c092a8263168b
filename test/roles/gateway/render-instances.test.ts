/** Registered instances at the gateway: DHCP reservations and names, never over config or members. */
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { registryServers } from '../../../roles/gateway/index.js';
import { renderGateway } from '../../../roles/gateway/render.js';
import {
  lanAddressOf,
  parseDhcpHosts,
  parseNotes,
  planInstances,
  renderDhcpHosts,
  renderNotes,
} from '../../../roles/gateway/render-instances.js';

const cfg = parseGatewayConfig({ dhcp: { reservations: [{ mac: '02:00:00:00:00:21', ip: '10.88.0.21', name: 'storage1' }] } });
const member = (name: string, addr: string, role = 'compute', status = 'alive'): Member =>
  ({ name, addr, port: 7946, tags: { role }, status }) as unknown as Member;
const instances = [
  { name: 'web-1', macs: ['02:00:00:00:01:01', '02:00:00:00:01:02'], ips: ['192.168.9.9', '10.88.0.50'] },
  { name: 'pxe-1', macs: ['02:00:00:00:01:03'], ips: [] },
  { name: 'dup-mac', macs: ['02:00:00:00:00:21'], ips: [] },
  { name: 'dup-ip', macs: ['02:00:00:00:01:04'], ips: ['10.88.0.21'] },
  { name: 'node-a', macs: ['02:00:00:00:01:05'], ips: [] },
  { name: 'storage1', macs: ['02:00:00:00:01:06'], ips: [] },
];

describe('instances at the gateway', () => {
  it('reserves the first LAN address, else none', () => {
    expect(lanAddressOf(cfg, instances[0])).toBe('10.88.0.50');
    expect(lanAddressOf(cfg, instances[1])).toBeUndefined();
    expect(lanAddressOf(cfg, { name: 'g', macs: [], ips: ['10.88.0.1'] })).toBeUndefined(); // the gateway's own
  });
  it('leaves out instances whose MAC, address or name the config, a member or the gateway has, and says why', () => {
    const more = [
      ...instances,
      { name: 'on-member', macs: ['02:00:00:00:01:07'], ips: ['10.88.0.5'] },
      { name: 'on-gw', macs: ['02:00:00:00:01:08'], ips: ['10.88.0.1'] },
      { name: 'gateway', macs: ['02:00:00:00:01:09'], ips: [] },
      { name: 'far', macs: ['02:00:00:00:01:0a'], ips: ['192.168.1.5'] },
    ];
    const plan = planInstances(cfg, [member('node-a', '10.88.0.5')], more);
    expect(plan.served.map((i) => i.name)).toEqual(['far', 'pxe-1', 'web-1']);
    expect(plan.notes).toEqual([
      { name: 'dup-ip', served: false, reason: 'address 10.88.0.21 is reserved for storage1 in roles.gateway.dhcp.reservations' },
      { name: 'dup-mac', served: false, reason: 'MAC 02:00:00:00:00:21 is reserved for storage1 in roles.gateway.dhcp.reservations' },
      { name: 'far', served: true, reason: 'address 192.168.1.5 is outside the LAN 10.88.0.0/24: it gets a dynamic one' },
      { name: 'gateway', served: false, reason: "name gateway is the gateway's own name" },
      { name: 'node-a', served: false, reason: "name node-a is member node-a's name" },
      { name: 'on-gw', served: false, reason: "address 10.88.0.1 is the gateway's own address" },
      { name: 'on-member', served: false, reason: "address 10.88.0.5 is member node-a's address" },
      { name: 'storage1', served: false, reason: 'name storage1 is reserved for 02:00:00:00:00:21 in roles.gateway.dhcp.reservations' },
    ]);
    expect(parseNotes(renderNotes(plan.notes))).toEqual(plan.notes);
  });
  it("frees a member's address once it left", () => {
    const one = [{ name: 'on-member', macs: ['02:00:00:00:01:07'], ips: ['10.88.0.5'] }];
    expect(planInstances(cfg, [member('node-a', '10.88.0.5', 'compute', 'failed')], one).served).toHaveLength(0);
    expect(planInstances(cfg, [member('node-a', '10.88.0.5', 'compute', 'left')], one).served).toHaveLength(1);
  });
  it('keeps a planned host served after it joins Serf under its own name and address', () => {
    const host = { name: 'metal-1', macs: ['02:00:00:00:02:01'], ips: ['10.88.0.60'], host: true as const };
    const joined = [member('metal-1', '10.88.0.60')];
    expect(planInstances(cfg, joined, [host])).toEqual({ served: [host], notes: [] });
    // Joined with the address DHCP gave it before the reservation: still the same machine.
    expect(planInstances(cfg, [member('metal-1', '10.88.0.130')], [host]).served).toEqual([host]);
    const files = renderGateway({ node: 'gw', config: cfg as never, members: joined, instances: [host] });
    const byPath = new Map(files.map((f) => [f.path, f.content]));
    expect(byPath.get('/var/lib/mammatus/gateway/dhcp-hosts.d/metal-1')).toContain('02:00:00:00:02:01,10.88.0.60,metal-1\n');
    expect(byPath.get('/var/lib/mammatus/gateway/hosts.d/metal-1')).toContain('10.88.0.60 metal-1.mammatus metal-1');
  });
  it('exempts a planned host only from its own member: not from another member, a reservation or the gateway', () => {
    const host = (name: string, ips: string[]) => ({ name, macs: ['02:00:00:00:02:02'], ips, host: true as const });
    // Another member's address.
    expect(
      planInstances(cfg, [member('metal-2', '10.88.0.61'), member('node-b', '10.88.0.62')], [host('metal-2', ['10.88.0.62'])]).notes,
    ).toEqual([{ name: 'metal-2', served: false, reason: "address 10.88.0.62 is member node-b's address" }]);
    // A reserved name stays the reservation's, member or not.
    expect(planInstances(cfg, [member('storage1', '10.88.0.21')], [host('storage1', [])]).served).toEqual([]);
    expect(planInstances(cfg, [], [host('gateway', [])]).served).toEqual([]);
    // Without the flag (an instance, not a host) the member's name still wins.
    expect(
      planInstances(cfg, [member('metal-3', '10.88.0.63')], [{ name: 'metal-3', macs: ['02:00:00:00:02:03'], ips: [] }]).served,
    ).toEqual([]);
  });
  it('reads its dhcp-hostsdir files back', () => {
    const [withIp, without] = renderDhcpHosts(cfg, [instances[0], instances[1]]);
    expect(parseDhcpHosts(withIp.content)).toEqual({ name: 'web-1', macs: ['02:00:00:00:01:01', '02:00:00:00:01:02'], ip: '10.88.0.50' });
    expect(parseDhcpHosts(without.content)).toEqual({ name: 'pxe-1', macs: ['02:00:00:00:01:03'] });
    expect(parseDhcpHosts('# nothing\n')).toBeUndefined();
  });
  it("tags a Raspberry Pi host's MACs with set:rpi, and reads that file back", () => {
    const pi = { name: 'pi-1', macs: ['dc:a6:32:01:36:c2'], ips: ['10.88.0.52'], host: true as const, rpi: true as const };
    const [withIp, without] = renderDhcpHosts(cfg, [pi, { ...pi, ips: [] }]);
    expect(withIp.content).toContain('\ndc:a6:32:01:36:c2,set:rpi,10.88.0.52,pi-1\n');
    expect(without.content).toContain('\ndc:a6:32:01:36:c2,set:rpi,pi-1\n');
    // The tag is not part of the reservation: lease release still finds the MAC and address.
    expect(parseDhcpHosts(withIp.content)).toEqual({ name: 'pi-1', macs: ['dc:a6:32:01:36:c2'], ip: '10.88.0.52' });
    expect(parseDhcpHosts(without.content)).toEqual({ name: 'pi-1', macs: ['dc:a6:32:01:36:c2'] });
  });
  it('renders a dhcp-hostsdir file per instance and a name for those with an address', () => {
    const files = renderGateway({ node: 'gw', config: cfg as never, members: [member('node-a', '10.88.0.5')], instances });
    const byPath = new Map(files.map((f) => [f.path, f.content]));
    expect(byPath.get('/var/lib/mammatus/gateway/dhcp-hosts.d/web-1')).toContain(
      '02:00:00:00:01:01,10.88.0.50,web-1\n02:00:00:00:01:02,10.88.0.50,web-1\n',
    );
    expect(byPath.get('/var/lib/mammatus/gateway/dhcp-hosts.d/pxe-1')).toContain('02:00:00:00:01:03,pxe-1\n');
    expect(byPath.get('/var/lib/mammatus/gateway/hosts.d/web-1')).toContain('10.88.0.50 web-1.mammatus web-1');
    expect(byPath.has('/var/lib/mammatus/gateway/hosts.d/pxe-1')).toBe(false); // named by its DHCP lease instead
    expect(byPath.has('/var/lib/mammatus/gateway/dhcp-hosts.d/dup-mac')).toBe(false);
    expect(byPath.get('/var/lib/mammatus/gateway/left-out')).toContain('dup-mac: left out: MAC 02:00:00:00:00:21 is reserved for storage1');
    expect(byPath.get('/var/lib/mammatus/gateway/members')).toContain('node-a 10.88.0.5 alive\n');
  });
  it('finds the registry at the alive controllers unless configured', () => {
    const members = [
      member('c2', '10.88.0.12', 'controller'),
      member('c1', '10.88.0.11', 'compute,controller'),
      member('c3', '10.88.0.13', 'controller', 'failed'),
    ];
    expect(registryServers(cfg, members)).toEqual(['nats://10.88.0.11:4222', 'nats://10.88.0.12:4222']);
    expect(registryServers(parseGatewayConfig({ registry: { nats: ['nats://10.0.0.9:4999'] } }), members)).toEqual([
      'nats://10.0.0.9:4999',
    ]);
    // Once trust is checked, a tag alone makes no registry server.
    const checked = [
      { ...members[0], trusted: ['controller'] },
      { ...members[1], trusted: [] },
    ];
    expect(registryServers(cfg, checked)).toEqual(['nats://10.88.0.12:4222']);
  });
});
