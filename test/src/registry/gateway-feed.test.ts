/** What a gateway keeps of an instance record: enough for DHCP and DNS, and whether it is a planned host. */
import { describe, expect, it } from 'vitest';
import type { InstanceRecord } from '../../../core/instance-record.js';
import { gatewaySummary } from '../../../src/registry/gateway-feed.js';

const base = {
  id: 'i-0000000000000000a',
  name: 'metal-1',
  macs: ['02:00:00:00:02:01'],
  ips: ['10.88.0.60'],
  ssh_keys: [],
  tags: {},
} as unknown as InstanceRecord;

describe('gatewaySummary', () => {
  it('keeps name, MACs and IPs of an instance, without a host flag', () => {
    expect(gatewaySummary(base)).toEqual({ name: 'metal-1', macs: ['02:00:00:00:02:01'], ips: ['10.88.0.60'] });
  });

  it('flags a planned host, so its reservation survives its joining Serf', () => {
    const host = { ...base, host: { roles: ['compute'], arch: 'bios', join_expires_at: '2026-12-07T00:00:00Z', progress: {} } };
    expect(gatewaySummary(host as unknown as InstanceRecord)).toEqual({
      name: 'metal-1',
      macs: ['02:00:00:00:02:01'],
      ips: ['10.88.0.60'],
      host: true,
    });
  });

  it('flags a Raspberry Pi host, so the gateway tags its MACs for the Pi bootloader', () => {
    const pi = { ...base, host: { roles: ['compute'], arch: 'rpi', join_expires_at: '2026-12-07T00:00:00Z', progress: {} } };
    expect(gatewaySummary(pi as unknown as InstanceRecord)).toEqual({
      name: 'metal-1',
      macs: ['02:00:00:00:02:01'],
      ips: ['10.88.0.60'],
      host: true,
      rpi: true,
    });
  });
});
