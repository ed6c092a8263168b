/** Choosing a compute node for a launch (pure), the capacity answer, and the live status column. */
import { describe, expect, it } from 'vitest';
import { liveStatus } from '../../../agent/cli/instance.js';
import { chooseNode, parseCapacityAnswer, unfitReason, type CapacitySurvey } from '../../../agent/cli/placement.js';
import type { Member } from '../../../core/contracts.js';
import { buildCapacity, type CapacityAnswer } from '../../../roles/compute/capacity.js';
import type { InstanceRecord } from '../../../core/instance-record.js';

const member = (
  name: string,
  extra: Partial<Member> = {},
  tags: Record<string, string> = { role: 'compute', mammatus: '0.1.0' },
): Member => ({ name, addr: '10.0.0.1', port: 7946, tags, status: 'alive', ...extra });
const answer = (node: string, extra: Partial<CapacityAnswer> = {}): CapacityAnswer => ({
  node,
  ready: true,
  cpus: 4,
  mem_total_mb: 8000,
  mem_available_mb: 4000,
  load1: 0.1,
  instances: 0,
  running: 0,
  ...extra,
});
const survey = (pairs: [Member, CapacityAnswer | string | undefined][]): CapacitySurvey => ({
  members: pairs.map(([m]) => m),
  answers: new Map(pairs.filter(([, a]) => a !== undefined).map(([m, a]) => [m.name, a!])),
});

describe('chooseNode', () => {
  it('picks the fewest instances per CPU, counting what the registry placed but LXD has not created yet', () => {
    const s = survey([
      [member('big'), answer('big', { cpus: 8, instances: 4 })],
      [member('small'), answer('small', { cpus: 2, instances: 0 })],
    ]);
    // big: (4+1)/8 = 0.625; small: (0+1)/2 = 0.5.
    expect(chooseNode(s, new Map())).toEqual({ node: 'small' });
    // Two launches recorded for small already: (2+1)/2 = 1.5.
    expect(chooseNode(s, new Map([['small', 2]]))).toEqual({ node: 'big' });
  });

  it('breaks ties by available memory, then by name', () => {
    expect(
      chooseNode(
        survey([
          [member('a'), answer('a')],
          [member('b'), answer('b', { mem_available_mb: 9000 })],
        ]),
        new Map(),
      ),
    ).toEqual({ node: 'b' });
    expect(
      chooseNode(
        survey([
          [member('b'), answer('b')],
          [member('a'), answer('a')],
        ]),
        new Map(),
      ),
    ).toEqual({ node: 'a' });
  });

  it('says why no node fits', () => {
    const s = survey([
      [member('down', { status: 'failed' }), undefined],
      [member('silent'), undefined],
      [member('unready'), answer('unready', { ready: false, reason: 'LXD is not set up' })],
      [member('broken'), 'error: handler failed'],
    ]);
    expect(chooseNode(s, new Map())).toEqual({
      error:
        'no compute node can take the instance (broken: error: handler failed; down: not alive (serf: failed); silent: did not answer; unready: not ready: LXD is not set up)',
    });
    expect(chooseNode(survey([]), new Map())).toEqual({ error: 'no compute node can take the instance: the cluster has no compute node' });
  });

  it('unfitReason covers members without the role or an agent', () => {
    expect(unfitReason(undefined, undefined)).toBe('not a member of the cluster');
    expect(unfitReason(member('x', {}, { role: 'gateway,storage', mammatus: '1' }), undefined)).toBe('does not have the compute role');
    expect(unfitReason(member('x', {}, { role: 'gateway,compute' }), undefined)).toBe('runs no mammatus agent');
    expect(unfitReason(member('x'), answer('x'))).toBeUndefined();
  });

  it('parses answers, and names what is not one', () => {
    expect(parseCapacityAnswer(JSON.stringify(answer('x')))).toEqual(answer('x'));
    expect(parseCapacityAnswer('{"error":"timeout"}')).toBe('error: timeout');
    expect(parseCapacityAnswer('{"node":"x"}')).toBe('bad answer');
    expect(parseCapacityAnswer('pong')).toBe('bad answer');
  });
});

describe('buildCapacity', () => {
  const host = { cpus: 2, memTotalBytes: 2048 * 1024 * 1024, memAvailableBytes: 1024.4 * 1024 * 1024, load1: 0.123 };
  it("answers from the compute role's facts and the host", () => {
    expect(buildCapacity('cn1', { ready: true, instances: 3, running: 2 }, host)).toEqual({
      node: 'cn1',
      ready: true,
      cpus: 2,
      mem_total_mb: 2048,
      mem_available_mb: 1024,
      load1: 0.12,
      instances: 3,
      running: 2,
    });
  });
  it('is not ready without facts, or with a reason (shortened)', () => {
    expect(buildCapacity('cn1', undefined, host)).toMatchObject({
      ready: false,
      reason: 'the compute role reports nothing yet',
      instances: 0,
    });
    expect(buildCapacity('cn1', { ready: false, reason: 'x'.repeat(500) }, host).reason).toHaveLength(160);
  });
});

describe('liveStatus', () => {
  const rec = (extra: Partial<InstanceRecord>) => ({ name: 'a', node: 'cn1', ...extra }) as InstanceRecord;
  it("is the node's last word unless Serf says the node is gone", () => {
    const alive = new Map([['cn1', 'alive']]);
    expect(liveStatus(rec({ observed: { status: 'running', at: 'x' } }), alive)).toBe('running');
    expect(liveStatus(rec({}), alive)).toBe('pending');
    expect(liveStatus(rec({ observed: { status: 'running', at: 'x' } }), new Map([['cn1', 'failed']]))).toBe('node failed');
    expect(liveStatus(rec({}), new Map())).toBe('node gone');
    expect(liveStatus(rec({ observed: { status: 'stopped', at: 'x' } }), undefined)).toBe('stopped');
    expect(liveStatus(rec({ node: undefined }), alive)).toBe('-');
  });
});
