/** Registered instances at the gateway: DHCP reservations and names, never over config or members. */
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../agent/types.js';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { registryServers } from '../../../roles/gateway/index.js';
import { renderGateway } from '../../../roles/gateway/render.js';
import { lanAddressOf, usableInstances } from '../../../roles/gateway/render-instances.js';

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
    expect(lanAddressOf(cfg, instances[0]!)).toBe('10.88.0.50');
    expect(lanAddressOf(cfg, instances[1]!)).toBeUndefined();
    expect(lanAddressOf(cfg, { name: 'g', macs: [], ips: ['10.88.0.1'] })).toBeUndefined(); // the gateway's own
  });
  it('drops instances whose MAC, address or name the config or a member has', () => {
    expect(usableInstances(cfg, [member('node-a', '10.88.0.5')], instances).map((i) => i.name)).toEqual(['pxe-1', 'web-1']);
  });
  it('renders a dhcp-hostsdir file per instance and a name for those with an address', () => {
    const files = renderGateway({ node: 'gw', config: cfg as never, members: [member('node-a', '10.88.0.5')], instances });
    const byPath = new Map(files.map((f) => [f.path, f.content]));
    expect(byPath.get('/var/lib/mammatus/gateway/dhcp-hosts.d/web-1')).toContain('02:00:00:00:01:01,10.88.0.50,web-1\n02:00:00:00:01:02,10.88.0.50,web-1\n');
    expect(byPath.get('/var/lib/mammatus/gateway/dhcp-hosts.d/pxe-1')).toContain('02:00:00:00:01:03,pxe-1\n');
    expect(byPath.get('/var/lib/mammatus/gateway/hosts.d/web-1')).toContain('10.88.0.50 web-1.mammatus web-1');
    expect(byPath.has('/var/lib/mammatus/gateway/hosts.d/pxe-1')).toBe(false); // named by its DHCP lease instead
    expect(byPath.has('/var/lib/mammatus/gateway/dhcp-hosts.d/dup-mac')).toBe(false);
  });
  it('finds the registry at the alive controllers unless configured', () => {
    const members = [member('c2', '10.88.0.12', 'controller'), member('c1', '10.88.0.11', 'compute,controller'), member('c3', '10.88.0.13', 'controller', 'failed')];
    expect(registryServers(cfg, members)).toEqual(['nats://10.88.0.11:4222', 'nats://10.88.0.12:4222']);
    expect(registryServers(parseGatewayConfig({ registry: { nats: ['nats://10.0.0.9:4999'] } }), members)).toEqual(['nats://10.0.0.9:4999']);
  });
});
