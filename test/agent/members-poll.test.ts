import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Member } from '../../core/contracts.js';
import { MembersPoll, sameMembers } from '../../agent/members-poll.js';

const member = (name: string, tags: Record<string, string> = {}, status = 'alive'): Member =>
  ({ name, addr: '10.0.0.1', port: 7946, tags, status }) as unknown as Member;
const log = pino({ level: 'silent' });

describe('sameMembers', () => {
  it('ignores order of members and of tags (Go encodes maps in random order)', () => {
    const a = [member('a', { role: 'gateway', mammatus: '1' }), member('b')];
    const b = [member('b'), member('a', { mammatus: '1', role: 'gateway' })];
    expect(sameMembers(a, b)).toBe(true);
  });
  it('sees a changed tag, status, a new or a missing member', () => {
    const a = [member('a', { role: 'gateway' })];
    expect(sameMembers(a, [member('a', { role: 'compute' })])).toBe(false);
    expect(sameMembers(a, [member('a', { role: 'gateway' }, 'failed')])).toBe(false);
    expect(sameMembers(a, [...a, member('b')])).toBe(false);
    expect(sameMembers(a, [])).toBe(false);
  });
});

describe('MembersPoll', () => {
  it('reports only a list that differs, and not when unwanted', async () => {
    let current = [member('a')];
    let fresh = [member('a')];
    let wanted = true;
    const seen: (readonly Member[])[] = [];
    const poll = new MembersPoll({
      wanted: () => wanted,
      fetch: async () => fresh,
      current: () => current,
      changed: (f) => seen.push(f),
      log,
    });
    await poll.poll();
    expect(seen).toHaveLength(0);
    fresh = [member('a'), member('b')];
    await poll.poll();
    expect(seen).toEqual([fresh]);
    current = fresh;
    wanted = false;
    fresh = [];
    await poll.poll();
    expect(seen).toHaveLength(1);
  });
  it('a failing fetch is not thrown (the session reconnects by itself)', async () => {
    const poll = new MembersPoll({
      wanted: () => true,
      fetch: () => Promise.reject(new Error('serf down')),
      current: () => [],
      changed: () => expect.unreachable(),
      log,
    });
    await expect(poll.poll()).resolves.toBeUndefined();
  });
});
