/** The registry's write API for compute nodes: what a request may look like (src/registry/node-writes.ts). */
import { describe, expect, it } from 'vitest';
import { MAX_NODE_WRITE_BYTES, parseNodeWrite } from '../../../src/registry/node-writes.js';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

describe('a compute node write request', () => {
  it('takes the three operations', () => {
    expect(parseNodeWrite(enc({ op: 'ips', id: 'i-1', ips: ['10.0.0.2'] }))).toEqual({ op: 'ips', id: 'i-1', ips: ['10.0.0.2'] });
    expect(parseNodeWrite(enc({ op: 'observed', id: 'i-1', observed: { status: 'running' } })).op).toBe('observed');
    expect(parseNodeWrite(enc({ op: 'remove', id: 'i-1' })).op).toBe('remove');
  });

  it('refuses anything else with a reason, before reading a large one', () => {
    expect(() => parseNodeWrite(new Uint8Array(MAX_NODE_WRITE_BYTES + 1))).toThrow(/larger than 16384 bytes/);
    expect(() => parseNodeWrite(enc('{'))).toThrow(/not JSON/);
    expect(() => parseNodeWrite(enc({ op: 'ips' }))).toThrow(/needs an id/);
    expect(() => parseNodeWrite(enc({ op: 'ips', id: 'i-1', ips: [1] }))).toThrow(/unknown op/);
    expect(() => parseNodeWrite(enc({ op: 'state', id: 'i-1', state: 'deleting' }))).toThrow(/unknown op/);
    expect(() => parseNodeWrite(enc(null))).toThrow(/needs an id/);
  });
});
