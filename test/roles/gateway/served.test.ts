/** What a gateway says about the instances it serves: its status line and `mammatus.reservations`. */
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { answerReservations, servedFacts } from '../../../roles/gateway/served.js';
import type { DesiredState } from '../../../roles/types.js';

const member = (name: string, addr: string): Member => ({ name, addr, port: 7946, tags: {}, status: 'alive' });
const desired: DesiredState = {
  node: 'gw-1',
  config: {},
  members: [member('c-1', '10.88.0.5')],
  instances: [
    { name: 'web-1', macs: ['02:00:00:00:00:01'], ips: ['10.88.0.50'] },
    { name: 'bad-1', macs: ['02:00:00:00:00:02'], ips: ['10.88.0.5'] },
  ],
};

describe('gateway: what it serves', () => {
  it('sums it up for mammatus status', () => {
    expect(servedFacts(desired)?.summary).toBe("1 instance served, 1 left out (bad-1: address 10.88.0.5 is member c-1's address)");
    expect(servedFacts({ ...desired, instances: undefined })).toBeUndefined(); // no registry followed
  });
  it('answers for every instance, for one, and for a candidate not yet registered', () => {
    expect(answerReservations(Buffer.from(''), desired)).toEqual({
      node: 'gw-1',
      served: 1,
      notes: [['bad-1', false, "address 10.88.0.5 is member c-1's address"]],
      truncated: false,
    });
    expect(answerReservations(Buffer.from('web-1'), desired)).toEqual({ node: 'gw-1', name: 'web-1', served: true });
    expect(answerReservations(Buffer.from('nope'), desired)).toMatchObject({
      served: false,
      reason: 'not in the registry as this gateway sees it',
    });
    const candidate = { name: 'web-1', macs: ['02:00:00:00:00:09'], ips: ['10.88.0.1'] };
    expect(answerReservations(Buffer.from(JSON.stringify(candidate)), desired)).toEqual({
      node: 'gw-1',
      name: 'web-1',
      served: false,
      reason: "address 10.88.0.1 is the gateway's own address",
    });
    expect(() => answerReservations(Buffer.from('{"name":1}'), desired)).toThrow(/candidate/);
    expect(answerReservations(Buffer.from(''), undefined)).toBeUndefined();
  });
  it("keeps the answer under Serf's limit with many left out", () => {
    const many = Array.from({ length: 80 }, (_, i) => ({
      name: `x-${i}`,
      macs: [`02:00:00:00:01:${i.toString(16).padStart(2, '0')}`],
      ips: ['10.88.0.5'],
    }));
    const answer = answerReservations(Buffer.from(''), { ...desired, instances: many }) as { notes: unknown[]; truncated: boolean };
    expect(Buffer.byteLength(JSON.stringify(answer))).toBeLessThanOrEqual(800);
    expect(answer.truncated).toBe(true);
    expect(answer.notes.length).toBeGreaterThan(5);
  });
});
