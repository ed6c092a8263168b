/**
 * Admission's order of checks (src/hosts/admission.ts), with the buckets replaced by records in
 * memory: whatever fails before the secret is taken (the gossip key, no controller to join, a
 * controller's name, no authority) leaves the secret for the next try; the answer is sealed to the
 * host's key; progress reports are checked. The real buckets: test/integration/host-join.test.ts.
 */
import { createUser } from '@nats-io/nkeys';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { HostJoinGrant } from '../../../core/host-record.js';
import type { InstanceRecord } from '../../../core/instance-record.js';
import { createAuthority, type AdmittedNode } from '../../../core/trust.js';
import { answerJoin, answerProgress, type AdmissionDeps } from '../../../src/hosts/admission.js';
import { controllerSerfAddresses } from '../../../src/hosts/hosted.js';
import { credentialsFromGrant } from '../../../agent/cli/node-join.js';
import { newBoxKeyPair, openSealed } from '../../../src/hosts/sealed.js';
import { JoinRefused } from '../../../src/hosts/joins.js';
import type { Member } from '../../../core/contracts.js';
import { certFingerprint, makeRoot } from '../../../src/ca/pki.js';

const SECRET = 'A'.repeat(43);
const SEED = createAuthority();
const MAC = '52:54:00:00:03:01';
const record = {
  id: 'h1',
  name: 'metal-1',
  macs: [MAC],
  host: { roles: ['compute'], arch: 'bios', join_expires_at: '2099-01-01T00:00:00Z', progress: { registered: '2026-12-06T00:00:00Z' } },
} as unknown as InstanceRecord;

function deps(over: Partial<AdmissionDeps> = {}) {
  const consumed: string[] = [];
  const roster = new Map<string, AdmittedNode>();
  const d: AdmissionDeps = {
    find: (id) => Promise.resolve(id === 'h1' ? record : undefined),
    consume: (id) => (consumed.push(id), Promise.resolve('first' as const)),
    progress: () => Promise.resolve(),
    roster: {
      get: (n) => Promise.resolve(roster.get(n)),
      put: (n) => Promise.resolve(void roster.set(n.node, n)),
      list: () => Promise.resolve([...roster.values()]),
    },
    authoritySeed: () => SEED,
    gossipKey: () => Promise.resolve('k'.repeat(44)),
    retryJoin: () => ['10.0.0.1:7946'],
    now: () => new Date('2026-12-06T01:00:00Z'),
    log: pino({ level: 'silent' }),
    ...over,
  };
  return { d, consumed, roster };
}
const NKEY = createUser().getPublicKey();
const request = (box = newBoxKeyPair(), nkey = NKEY) => ({
  box,
  data: Buffer.from(JSON.stringify({ host_id: 'h1', mac: MAC, secret: SECRET, nkey, box: box.publicKey })),
});

describe('admission', () => {
  it('answers with a grant sealed to the host and takes the secret once', async () => {
    const { d, consumed, roster } = deps();
    const r = request();
    const a = await answerJoin(d, r.data);
    expect(a.ok).toBe(true);
    const grant = openSealed(r.box, a.sealed!) as HostJoinGrant;
    expect(grant).toMatchObject({ node: 'metal-1', roles: ['compute'], retry_join: ['10.0.0.1:7946'], gossip_key: 'k'.repeat(44) });
    expect(consumed).toEqual(['h1']);
    expect(roster.get('metal-1')?.roles).toEqual(['compute']);
  });

  it('carries the CA root and its fingerprint in the grant when the cluster has a CA, and the host takes both into its credentials', async () => {
    const root = (await makeRoot()).certPem;
    const other = (await makeRoot()).certPem;
    const pin = { ca_fingerprint: certFingerprint(root), ca_root: `${root.trim()}\n` };
    const r = request();
    const a = await answerJoin(deps({ caPin: () => Promise.resolve(pin) }).d, r.data);
    const grant = openSealed(r.box, a.sealed!) as HostJoinGrant;
    expect(grant).toMatchObject(pin);
    const nkey = createUser();
    const r2 = request(newBoxKeyPair(), nkey.getPublicKey());
    const g2 = openSealed(r2.box, (await answerJoin(deps({ caPin: () => Promise.resolve(pin) }).d, r2.data)).sealed!);
    const seed = Buffer.from(nkey.getSeed()).toString('ascii');
    expect(credentialsFromGrant(g2, seed, nkey.getPublicKey()).creds).toMatchObject(pin);
    // A malformed fingerprint makes the grant unusable rather than pinning garbage.
    expect(() => credentialsFromGrant({ ...(g2 as object), ca_fingerprint: 'nope' }, seed, nkey.getPublicKey())).toThrow(/ca_fingerprint/);
    // A root that is not the pinned one, or comes with a second certificate, is refused too.
    expect(() => credentialsFromGrant({ ...(g2 as object), ca_root: other }, seed, nkey.getPublicKey())).toThrow(
      /ca_root: .*does not match the pinned fingerprint/,
    );
    expect(() => credentialsFromGrant({ ...(g2 as object), ca_root: `${root}${other}` }, seed, nkey.getPublicKey())).toThrow(
      /ca_root: the CA root holds 2 certificates/,
    );
    // Without a CA: no pin.
    const r3 = request();
    const g3 = openSealed(r3.box, (await answerJoin(deps({ caPin: () => Promise.resolve(undefined) }).d, r3.data)).sealed!);
    expect((g3 as HostJoinGrant).ca_fingerprint).toBeUndefined();
    expect((g3 as HostJoinGrant).ca_root).toBeUndefined();
  });

  it('leaves the secret when something fails before it is taken', async () => {
    const cases: [Partial<AdmissionDeps>, RegExp][] = [
      [{ gossipKey: () => Promise.reject(new Error('serf is away')) }, /could not admit the host: serf is away/],
      [{ retryJoin: () => [] }, /no alive controller/],
      [{ authoritySeed: () => undefined }, /holds no authority seed/],
      [
        {
          roster: {
            get: () => Promise.resolve({ node: 'metal-1', roles: ['controller'], nkey: 'U', admitted_at: '' }),
            put: () => Promise.resolve(),
            list: () => Promise.resolve([]),
          },
        },
        /a node named metal-1 is already admitted: choose another name or mammatus node remove metal-1/,
      ],
      [
        // A node of that name from node add, or from an earlier host of the same name: not this host's.
        {
          roster: {
            get: () => Promise.resolve({ node: 'metal-1', roles: ['compute'], nkey: 'U', admitted_at: '', host_id: 'h0' }),
            put: () => Promise.resolve(),
            list: () => Promise.resolve([]),
          },
        },
        /a node named metal-1 is already admitted/,
      ],
      [
        // Another node's public key (it is in that node's Serf trust tag).
        {
          roster: {
            get: () => Promise.resolve(undefined),
            put: () => Promise.resolve(),
            list: () => Promise.resolve([{ node: 'cn-1', roles: ['compute'], nkey: NKEY, admitted_at: '' }]),
          },
        },
        /this nkey is already admitted as node cn-1/,
      ],
      [{ find: () => Promise.resolve({ ...record, host: { ...record.host!, roles: ['controller'] } }) }, /planned as a controller/],
      [{ find: () => Promise.resolve({ ...record, host: undefined }) }, /no planned host h1/],
    ];
    for (const [over, error] of cases) {
      const { d, consumed } = deps(over);
      const a = await answerJoin(d, request().data);
      expect(a.ok).toBe(false);
      expect(a.error).toMatch(error);
      expect(consumed).toEqual([]);
    }
  });

  it("replaces only this host's own roster entry (a rejoin), and lets a joined host repeat its join only as a repeat", async () => {
    const { d, roster } = deps();
    roster.set('metal-1', { node: 'metal-1', roles: ['compute'], nkey: createUser().getPublicKey(), admitted_at: '', host_id: 'h1' });
    expect((await answerJoin(d, request().data)).ok).toBe(true);
    expect(roster.get('metal-1')).toMatchObject({ nkey: NKEY, host_id: 'h1' });
    // Recorded as joined: the secret must be taken as a repeat (repeatOnly), else "joined already".
    const joined = { ...record, host: { ...record.host!, progress: { ...record.host!.progress, joined: '2026-12-06T00:30:00Z' } } };
    const seen: boolean[] = [];
    const repeat = deps({
      find: () => Promise.resolve(joined),
      consume: (_id, _a, _now, repeatOnly) => (seen.push(repeatOnly), Promise.resolve('repeat' as const)),
    });
    const r = request();
    const a = await answerJoin(repeat.d, r.data);
    expect(a.ok).toBe(true);
    expect(openSealed(r.box, a.sealed!)).toMatchObject({ node: 'metal-1' });
    expect(seen).toEqual([true]);
    const refused = deps({
      find: () => Promise.resolve(joined),
      consume: () => Promise.reject(new JoinRefused('the join secret was used already')),
    });
    expect((await answerJoin(refused.d, request().data)).error).toBe(
      'host metal-1 joined already at 2026-12-06T00:30:00Z (mammatus host rejoin metal-1 for a new secret)',
    );
  });

  it('says the secret is spent when admission fails after taking it', async () => {
    const { d, consumed } = deps({
      roster: { get: () => Promise.resolve(undefined), put: () => Promise.reject(new Error('no quorum')), list: () => Promise.resolve([]) },
    });
    const a = await answerJoin(d, request().data);
    expect(a.error).toBe('the controllers could not admit the host: no quorum (its secret is spent: mammatus host rejoin metal-1)');
    expect(consumed).toEqual(['h1']);
  });

  it('checks progress reports: known steps only, installed only after the join with a disk', async () => {
    const { d } = deps();
    const report = (body: unknown) => answerProgress(d, Buffer.from(JSON.stringify(body)));
    expect(await report({ host_id: 'h1', step: 'seeded' })).toEqual({ ok: true });
    expect((await report({ host_id: 'h1', step: 'registered' })).error).toMatch(/one of booted, seeded, installed/);
    expect((await report({ host_id: 'h1', step: 'installed' })).error).toBe('host metal-1 has no install disk');
    expect((await report({ host_id: 'h2', step: 'booted' })).error).toBe('no planned host h2');
    expect((await report({ host_id: 'h1', step: 'booted', more: 1 })).error).toBe('request: unknown field more');
  });

  it('gives the alive controllers as retry_join, this controller even before its trust tag is back', () => {
    const m = (name: string, addr: string, over: Partial<Member> = {}): Member => ({
      name,
      addr,
      port: 7946,
      status: 'alive',
      tags: { role: 'controller' },
      ...over,
    });
    const members = [
      m('ctl-2', '10.0.0.12'),
      m('ctl-1', '10.0.0.11', { trusted: [] }),
      m('ctl-3', '10.0.0.13', { status: 'failed' }),
      m('cn-1', '10.0.0.21', { tags: { role: 'compute' } }),
      m('forged', '10.0.0.66', { trusted: [] }),
      m('ctl-6', 'fd00::6'),
    ];
    expect(controllerSerfAddresses(members, 'ctl-1')).toEqual(['10.0.0.11:7946', '10.0.0.12:7946', '[fd00::6]:7946']);
    expect(controllerSerfAddresses(members)).toEqual(['10.0.0.12:7946', '[fd00::6]:7946']);
  });
});
