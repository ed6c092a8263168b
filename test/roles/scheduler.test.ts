/** The role supervisor: role set changes, watched membership changes, files of removed roles. */
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { RoleScheduler } from '../../roles/scheduler.js';
import { BALANCERS_TIMEOUT_MS } from '../../roles/desired-inputs.js';
import type { Member } from '../../core/contracts.js';
import type { BalancerSet, Role } from '../../roles/types.js';
import { memoryFiles } from '../helpers/memory-files.js';
import { recordingRun } from '../helpers/recording-run.js';

const member = (name: string): Member => ({ name, addr: '10.0.0.1', port: 7946, tags: {}, status: 'alive' });

function setup() {
  const files = memoryFiles();
  const run = recordingRun();
  let members = [member('a')];
  const events: string[] = [];
  const hosts: Role = {
    name: 'gateway',
    watches: ['member-join'],
    render: (d) => [{ path: '/etc/hosts.mammatus', content: d.members.map((m) => m.name).join('\n') + '\n' }],
    reload: async (ctx) => void (await ctx.run('reload-hosts', [])),
    start: async () => void events.push('start gateway'),
    stop: async () => void events.push('stop gateway'),
    facts: (last) => (last ? { summary: `${last.members.length} members` } : undefined),
    queries: { 'mammatus.hosts': (payload, last) => ({ asked: payload.toString(), members: last?.members.map((m) => m.name) }) },
  };
  const plain: Role = { name: 'compute', render: () => [{ path: '/etc/compute.conf', content: 'x\n' }] };
  const sup = new RoleScheduler({
    roles: { gateway: hosts, compute: plain },
    run,
    files,
    log: pino({ level: 'silent' }),
    stateDir: () => '/var/lib/mammatus',
    node: () => 'a',
    members: () => members,
    roleConfig: () => ({}),
  });
  return { sup, files, run, events, setMembers: (m: Member[]) => (members = m) };
}

describe('RoleScheduler', () => {
  it("puts a role's balancers, resolved against the members of the same desired state, in desired", async () => {
    const seen: unknown[] = [];
    const role: Role = {
      name: 'gateway',
      balancers: (members) => (members.length > 1 ? { balancers: [] } : undefined),
      render: (d) => {
        seen.push(d.balancers);
        return [];
      },
    };
    let members = [member('a')];
    const sup = new RoleScheduler({
      roles: { gateway: role },
      run: recordingRun(),
      files: memoryFiles(),
      log: pino({ level: 'silent' }),
      stateDir: () => '/var/lib/mammatus',
      node: () => 'a',
      members: () => members,
      roleConfig: () => ({}),
    });
    await sup.setRoles(['gateway']);
    members = [member('a'), member('b')];
    await sup.reconcile(['gateway'], 'test');
    expect(seen).toEqual([undefined, []]);
  });

  it("a role's balancers that fail to read keep its last good ones, and fail no apply, nor the other roles'", async () => {
    const seen: unknown[] = [];
    const other: unknown[] = [];
    const good = { balancers: [{ record: { name: 'web' }, servers: [] }] } as unknown as BalancerSet;
    let fail: 'throw' | 'reject' | 'hang' | undefined;
    const role: Role = {
      name: 'gateway',
      balancers: () => {
        if (fail === 'throw') throw new Error('bad copy');
        if (fail === 'reject') return Promise.reject(new Error('feed broke'));
        if (fail === 'hang') return new Promise(() => undefined);
        return good;
      },
      render: (d) => {
        seen.push(d.balancers);
        return [];
      },
    };
    const compute: Role = { name: 'compute', render: (d) => (other.push(d.node), []) };
    const lines: string[] = [];
    const log = pino({ level: 'error' }, { write: (l: string) => void lines.push(l) });
    const sup = new RoleScheduler({
      roles: { gateway: role, compute },
      run: recordingRun(),
      files: memoryFiles(),
      log,
      stateDir: () => '/var/lib/mammatus',
      node: () => 'a',
      members: () => [member('a')],
      roleConfig: () => ({}),
    });
    await sup.setRoles(['gateway', 'compute']);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      for (const f of ['throw', 'reject', 'hang'] as const) {
        fail = f;
        const done = sup.reconcile(undefined, f);
        await vi.advanceTimersByTimeAsync(BALANCERS_TIMEOUT_MS + 1);
        await done;
      }
    } finally {
      vi.useRealTimers();
    }
    expect(seen).toEqual([good.balancers, good.balancers, good.balancers, good.balancers]);
    expect(other).toHaveLength(4);
    expect(sup.statuses()).toMatchObject({ gateway: { state: 'ok' }, compute: { state: 'ok' } });
    expect(lines.map((l) => (JSON.parse(l) as { err: string }).err)).toEqual([
      'bad copy',
      'feed broke',
      `no answer in ${BALANCERS_TIMEOUT_MS} ms`,
    ]);
    expect(lines[0]).toContain('keeping the last 1 read');
  });

  it("answers a role's queries and facts from its last apply, only while the role runs", async () => {
    const { sup, setMembers } = setup();
    expect(sup.answer('gateway', 'mammatus.hosts', Buffer.from('x'))).toBeUndefined();
    await sup.setRoles(['gateway']);
    setMembers([member('a'), member('b')]); // not applied yet: the answer is about what is applied
    expect(sup.answer('gateway', 'mammatus.hosts', Buffer.from('x'))).toEqual({ asked: 'x', members: ['a'] });
    expect(sup.statuses().gateway?.detail).toBe('1 members');
    await sup.setRoles([]);
    expect(sup.answer('gateway', 'mammatus.hosts', Buffer.from('x'))).toBeUndefined();
  });

  it('reports a role whose module cannot be loaded (files replaced by an upgrade) and runs the others', async () => {
    let attempts = 0;
    const sup = new RoleScheduler({
      roles: {
        gateway: async () => {
          attempts++;
          throw Object.assign(new Error("Cannot find module '/usr/lib/mammatus-agent/chunks/gateway-X.mjs'"), {
            code: 'ERR_MODULE_NOT_FOUND',
          });
        },
        compute: { name: 'compute', render: () => [{ path: '/etc/compute.conf', content: 'x\n' }] },
      },
      run: recordingRun(),
      files: memoryFiles(),
      log: pino({ level: 'silent' }),
      stateDir: () => '/var/lib/mammatus',
      node: () => 'a',
      members: () => [member('a')],
      roleConfig: () => ({}),
    });
    await sup.setRoles(['gateway', 'compute']);
    expect(sup.statuses()).toMatchObject({
      gateway: { state: 'error', error: expect.stringMatching(/^load: Cannot find module .*gateway-X\.mjs/) as unknown },
      compute: { state: 'ok' },
    });
    expect(sup.roles()).toEqual(['gateway', 'compute']);
    expect(attempts).toBe(1);
  });

  it('applies and starts added roles, reports unknown names as errors', async () => {
    const { sup, files, events } = setup();
    await sup.setRoles(['gateway'], ['bogus']);
    expect(files.contents()['/etc/hosts.mammatus']).toBe('a\n');
    expect(events).toEqual(['start gateway']);
    expect(sup.statuses()).toMatchObject({ gateway: { state: 'ok' }, bogus: { state: 'error', error: 'unknown role' } });
  });

  it('reconciles only roles watching a member event type, and after a serf reconnect', async () => {
    const { sup, files, run, setMembers } = setup();
    await sup.setRoles(['gateway', 'compute']);
    setMembers([member('a'), member('b')]);
    await sup.onMemberEvent('member-update'); // not watched
    expect(files.contents()['/etc/hosts.mammatus']).toBe('a\n');
    await sup.onMemberEvent('member-join');
    expect(files.contents()['/etc/hosts.mammatus']).toBe('a\nb\n');
    setMembers([member('a')]);
    await sup.onMembershipResync();
    expect(files.contents()['/etc/hosts.mammatus']).toBe('a\n');
    expect(run.calls.filter((c) => c[0] === 'reload-hosts').length).toBe(3);
  });

  it('stops a removed role and removes the files it owned', async () => {
    const { sup, files, events } = setup();
    await sup.setRoles(['gateway', 'compute']);
    await sup.setRoles(['compute']);
    expect(events).toEqual(['start gateway', 'stop gateway']);
    expect(files.contents()['/etc/hosts.mammatus']).toBeUndefined();
    expect(files.contents()['/etc/compute.conf']).toBe('x\n');
    expect(JSON.parse(files.contents()['/var/lib/mammatus/roles-owned.json'])).toEqual({ compute: ['/etc/compute.conf'] });
    expect(Object.keys(sup.statuses())).toEqual(['compute']);
  });

  it('does not make a caller with nothing to reconcile wait for a running apply', async () => {
    const { sup } = setup();
    await sup.setRoles(['compute']);
    let done = false;
    sup
      .onMemberEvent('member-join')
      .then(() => (done = true))
      .catch(() => undefined);
    await Promise.resolve();
    await Promise.resolve();
    expect(done).toBe(true);
  });
});

describe('RoleScheduler start/stop of in-process services', () => {
  it('starts a role only after a good apply, even when that is a later reconcile, and stops it once', async () => {
    const files = memoryFiles();
    const events: string[] = [];
    let failValidate = true;
    const role: Role = {
      name: 'controller',
      render: () => [{ path: '/etc/svc.conf', content: failValidate ? 'bad\n' : 'good\n' }],
      validate: async () => {
        if (failValidate) throw new Error('invalid');
      },
      start: async () => void events.push('start'),
      stop: async () => void events.push('stop'),
    };
    const sup = new RoleScheduler({
      roles: { controller: role },
      run: recordingRun(),
      files,
      log: pino({ level: 'silent' }),
      stateDir: () => '/state',
      node: () => 'n',
      members: () => [],
      roleConfig: () => ({}),
    });
    await sup.setRoles(['controller']);
    expect(sup.statuses().controller).toMatchObject({ state: 'error', error: 'validate: invalid' });
    expect(events).toEqual([]);
    failValidate = false;
    await sup.reconcile();
    await sup.reconcile();
    expect(events).toEqual(['start']);
    await sup.setRoles([]);
    await sup.stopAll();
    expect(events).toEqual(['start', 'stop']);
  });
});
