/**
 * A planned host's join at the controllers (issue 19), against a real nats-server -js: the host
 * API (src/hosts/hosted.ts) takes a host's one-time secret for credentials that verify with the
 * authority, puts its own key in the roster and lets it connect to NATS with its own seed; and it
 * refuses, as an attacker would try: the same secret twice, a spent secret after a rejoin, another
 * MAC, an expired secret, a well-formed wrong secret, an instance that is not a host, a host planned
 * as a controller, oversized and malformed requests. No secret reaches the logs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createUser } from '@nats-io/nkeys';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Member } from '../../core/contracts.js';
import { HOST_JOIN_SUBJECT, HOST_PROGRESS_SUBJECT, type HostJoinAnswer, type HostJoinGrant } from '../../core/host-record.js';
import { connectNats } from '../../core/nats.js';
import { parseCredentials, verifyTrustTag, type NodeCredentials } from '../../core/trust.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { serveHosts } from '../../src/hosts/hosted.js';
import { Hosts } from '../../src/hosts/hosts.js';
import { JoinSecrets } from '../../src/hosts/joins.js';
import { newBoxKeyPair, openSealed } from '../../src/hosts/sealed.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { Roster } from '../../src/trust/roster.js';

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`host join tests skipped: ${skip}`);

const GOSSIP_KEY = Buffer.alloc(32, 7).toString('base64');
const CONTROLLER: Member = { name: 'ctl-1', addr: '10.88.0.10', port: 7946, status: 'alive', tags: { role: 'controller' } };

/** What a host sends, and what it keeps to open the answer and connect with. */
function hostKeys() {
  const user = createUser();
  return { seed: Buffer.from(user.getSeed()).toString('ascii'), nkey: user.getPublicKey(), box: newBoxKeyPair() };
}

describe.skipIf(Boolean(skip))('host join at the controllers', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-hostjoin-'));
  const logs: string[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString());
        done();
      },
    }),
  );
  let nats: NatsServer;
  let nc: NatsConnection;
  let hosts: Hosts;
  let joins: JoinSecrets;
  let registry: InstanceRegistry;
  let roster: Roster;
  let api: { close(): void };
  const opened: NatsConnection[] = [];

  const join = async (body: unknown): Promise<HostJoinAnswer> =>
    JSON.parse(
      (await nc.request(HOST_JOIN_SUBJECT, typeof body === 'string' ? body : JSON.stringify(body), { timeout: 20_000 })).string(),
    ) as HostJoinAnswer;
  const progress = async (body: unknown) =>
    JSON.parse((await nc.request(HOST_PROGRESS_SUBJECT, JSON.stringify(body), { timeout: 10_000 })).string()) as {
      ok: boolean;
      error?: string;
    };
  const secretOf = async (id: string) => (await joins.get(id))!.secret;

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'hostjoin', dir: path.join(tmp, 'nats') });
    nc = await connectNats(nats.url, { name: 'metadata-service', credentials: nats.credentials });
    registry = await InstanceRegistry.open(nc);
    joins = await JoinSecrets.open(nc);
    roster = await Roster.open(nc);
    hosts = new Hosts(registry, joins);
    api = serveHosts(
      nc,
      { credentials: () => nats.credentials, gossipKey: () => Promise.resolve(GOSSIP_KEY), replicas: () => 1 },
      () => [CONTROLLER, { ...CONTROLLER, name: 'ctl-2', addr: '10.88.0.11', status: 'failed' }],
      log,
    );
  });
  afterAll(async () => {
    api?.close();
    await Promise.allSettled(opened.map((c) => c.close()));
    await nc?.close();
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('admits a planned host once: sealed credentials that verify, its key in the roster, its own NATS login', async () => {
    const h = await hosts.register({ name: 'metal-1', mac: '52:54:00:00:00:01', roles: ['compute'], arch: 'bios' });
    const secret = await secretOf(h.id);
    const keys = hostKeys();
    const answer = await join({ host_id: h.id, mac: '52:54:00:00:00:01', secret, nkey: keys.nkey, box: keys.box.publicKey });
    expect(answer.error).toBeUndefined();
    expect(answer.ok).toBe(true);
    expect(answer.sealed).not.toContain(GOSSIP_KEY);
    // Only the host's key opens it.
    expect(() => openSealed(newBoxKeyPair(), answer.sealed!)).toThrow(/does not open/);
    const grant = openSealed(keys.box, answer.sealed!) as HostJoinGrant;
    expect(grant).toMatchObject({ node: 'metal-1', roles: ['compute'], authority: nats.credentials.authority, gossip_key: GOSSIP_KEY });
    expect(grant.retry_join).toEqual(['10.88.0.10:7946']);
    expect(verifyTrustTag(nats.credentials.authority, 'metal-1', grant.tag)).toEqual({ roles: ['compute'], nkey: keys.nkey });
    expect(await roster.get('metal-1')).toMatchObject({ node: 'metal-1', roles: ['compute'], nkey: keys.nkey });
    const record = await registry.get(h.id);
    expect(record.host?.progress.joined).toBeDefined();
    expect(await joins.get(h.id)).toBeUndefined();

    // The host's own credentials: its seed with the grant. The server lists it as a compute node.
    const creds: NodeCredentials = parseCredentials(
      {
        version: 1,
        node: grant.node,
        roles: grant.roles,
        seed: keys.seed,
        authority: grant.authority,
        tag: grant.tag,
        admitted_at: grant.admitted_at,
      },
      'grant',
    );
    nats.trust.enter(creds);
    await nats.reload();
    const asHost = await connectNats(nats.url, { name: 'metal-1', timeoutMs: 3000, credentials: creds });
    opened.push(asHost);
    expect((await InstanceRegistry.open(asHost, { bind: true }).then((r) => r.get(h.id))).name).toBe('metal-1');
    // A joined node cannot reach the host API itself: only controllers may publish there.
    await expect(asHost.request(HOST_JOIN_SUBJECT, '{}', { timeout: 1500 })).rejects.toThrow();

    // The same secret again: refused, nothing changes.
    const again = await join({ host_id: h.id, mac: '52:54:00:00:00:01', secret, nkey: hostKeys().nkey, box: hostKeys().box.publicKey });
    expect(again).toEqual({ ok: false, error: expect.stringMatching(/joined already/) as unknown });
    expect((await roster.get('metal-1'))?.nkey).toBe(keys.nkey);
    // The very same join again (its answer was lost: the metadata service gave up waiting): answered
    // again, sealed to the same key; the roster keeps the same key.
    const repeat = await join({ host_id: h.id, mac: '52:54:00:00:00:01', secret, nkey: keys.nkey, box: keys.box.publicKey });
    expect(repeat.ok).toBe(true);
    expect(openSealed(keys.box, repeat.sealed!)).toMatchObject({ node: 'metal-1', roles: ['compute'] });
    expect(await roster.get('metal-1')).toMatchObject({ nkey: keys.nkey, host_id: h.id });
    // Same secret and nkey but another box key (someone who saw the request on the LAN): refused.
    const other = hostKeys();
    const replay = await join({ host_id: h.id, mac: '52:54:00:00:00:01', secret, nkey: keys.nkey, box: other.box.publicKey });
    expect(replay).toEqual({ ok: false, error: expect.stringMatching(/joined already/) as unknown });

    // After a rejoin the old secret is spent; the new one works (a rebooted diskless host).
    await hosts.rejoin('metal-1');
    const stale = await join({ host_id: h.id, mac: '52:54:00:00:00:01', secret, nkey: keys.nkey, box: keys.box.publicKey });
    expect(stale).toEqual({ ok: false, error: 'wrong join secret' });
    const fresh = hostKeys();
    const rejoined = await join({
      host_id: h.id,
      mac: '52:54:00:00:00:01',
      secret: await secretOf(h.id),
      nkey: fresh.nkey,
      box: fresh.box.publicKey,
    });
    expect(rejoined.ok).toBe(true);
    expect((await roster.get('metal-1'))?.nkey).toBe(fresh.nkey);
  });

  it('refuses another MAC, a wrong secret, an expired secret, an instance, a controller; the secret stays', async () => {
    const h = await hosts.register({ name: 'metal-2', mac: '52:54:00:00:00:02', roles: ['storage'], arch: 'efi64' });
    const secret = await secretOf(h.id);
    const k = hostKeys();
    const base = { host_id: h.id, mac: '52:54:00:00:00:02', secret, nkey: k.nkey, box: k.box.publicKey };
    expect(await join({ ...base, mac: '52:54:00:00:00:99' })).toEqual({
      ok: false,
      error: 'host metal-2 does not have MAC 52:54:00:00:00:99',
    });
    const wrong = `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
    expect(await join({ ...base, secret: wrong })).toEqual({ ok: false, error: 'wrong join secret' });
    expect(await join({ ...base, secret: 'short' })).toEqual({ ok: false, error: 'wrong join secret' });
    expect(await joins.get(h.id)).toBeDefined();
    expect(await roster.get('metal-2')).toBeUndefined();

    const old = await hosts.register({ name: 'metal-3', mac: '52:54:00:00:00:03', roles: ['compute'], arch: 'bios', ttlMs: 1 });
    await new Promise((r) => setTimeout(r, 20));
    const expired = await join({ ...base, host_id: old.id, mac: '52:54:00:00:00:03', secret: await secretOf(old.id) });
    expect(expired).toEqual({
      ok: false,
      error: expect.stringMatching(/^the join secret expired at .* \(mammatus host rejoin\)$/) as unknown,
    });

    const vm = await registry.register({ name: 'vm-1', macs: ['52:54:00:00:00:04'] });
    expect(await join({ ...base, host_id: vm.id, mac: '52:54:00:00:00:04' })).toEqual({ ok: false, error: `no planned host ${vm.id}` });
    expect(await join({ ...base, host_id: 'no-such-id' })).toEqual({ ok: false, error: 'no planned host no-such-id' });

    const ctl = await hosts.register({ name: 'metal-ctl', mac: '52:54:00:00:00:05', roles: ['controller'], arch: 'bios' });
    const asCtl = await join({ ...base, host_id: ctl.id, mac: '52:54:00:00:00:05', secret: await secretOf(ctl.id) });
    expect(asCtl.error).toMatch(/planned as a controller/);
    expect(await joins.get(ctl.id)).toBeDefined();

    // Malformed and oversized requests are refused before anything is read.
    expect((await join('not json')).error).toBe('request is not JSON');
    expect((await join({ ...base, extra: 1 })).error).toBe('request: unknown field extra');
    expect((await join({ ...base, nkey: 'UABC' })).error).toMatch(/nkey/);
    expect((await join({ ...base, box: 'AAAA' })).error).toMatch(/box/);
    expect((await join({ ...base, secret: 'x'.repeat(3000) })).error).toMatch(/larger than 2048 bytes/);

    // Finally the right one still works.
    expect((await join(base)).ok).toBe(true);
    // No secret, and no sealed answer's key, is ever logged.
    const text = logs.join('');
    expect(text).toContain('host join refused');
    for (const s of [secret, wrong, GOSSIP_KEY]) expect(text).not.toContain(s);
  });

  it("never takes over another node's name or key; the secret stays", async () => {
    // A node admitted by node add (no host marker) named like the planned host.
    const existing = hostKeys();
    await roster.put({ node: 'metal-6', roles: ['storage'], nkey: existing.nkey, admitted_at: new Date().toISOString() });
    const h = await hosts.register({ name: 'metal-6', mac: '52:54:00:00:00:09', roles: ['compute'], arch: 'bios' });
    const secret = await secretOf(h.id);
    const k = hostKeys();
    const base = { host_id: h.id, mac: '52:54:00:00:00:09', secret, nkey: k.nkey, box: k.box.publicKey };
    expect(await join(base)).toEqual({
      ok: false,
      error: 'a node named metal-6 is already admitted: choose another name or mammatus node remove metal-6',
    });
    expect((await roster.get('metal-6'))?.nkey).toBe(existing.nkey);
    expect(await joins.get(h.id)).toBeDefined();
    // A host sending another node's public key (public in its Serf trust tag): refused.
    await roster.revoke('metal-6');
    expect(await join({ ...base, nkey: (await roster.get('metal-1'))!.nkey })).toEqual({
      ok: false,
      error: 'this nkey is already admitted as node metal-1: a joining host makes a key of its own',
    });
    expect(await joins.get(h.id)).toBeDefined();
    expect((await join(base)).ok).toBe(true);
    expect(await roster.get('metal-6')).toMatchObject({ nkey: k.nkey, host_id: h.id });
  });

  it('records booted, seeded and (for a joined host with an install disk) installed', async () => {
    const h = await hosts.register({
      name: 'metal-4',
      mac: '52:54:00:00:00:06',
      roles: ['compute'],
      arch: 'bios',
      install_disk: '/dev/vda',
    });
    const plain = await hosts.register({ name: 'metal-5', mac: '52:54:00:00:00:07', roles: ['compute'], arch: 'bios' });
    expect(await progress({ host_id: h.id, step: 'booted' })).toEqual({ ok: true });
    expect(await progress({ host_id: h.id, step: 'seeded' })).toEqual({ ok: true });
    expect(await progress({ host_id: h.id, step: 'installed' })).toEqual({ ok: false, error: 'host metal-4 has not joined yet' });
    expect(await progress({ host_id: h.id, step: 'joined' })).toMatchObject({ ok: false, error: expect.stringMatching(/step/) as unknown });
    const k = hostKeys();
    expect(
      (await join({ host_id: h.id, mac: '52:54:00:00:00:06', secret: await secretOf(h.id), nkey: k.nkey, box: k.box.publicKey })).ok,
    ).toBe(true);
    expect(await progress({ host_id: h.id, step: 'installed' })).toEqual({ ok: true });
    expect(await progress({ host_id: plain.id, step: 'installed' })).toEqual({ ok: false, error: 'host metal-5 has no install disk' });
    const vm = await registry.register({ name: 'vm-2', macs: ['52:54:00:00:00:08'] });
    expect(await progress({ host_id: vm.id, step: 'booted' })).toEqual({ ok: false, error: `no planned host ${vm.id}` });
    const steps = (await registry.get(h.id)).host!.progress;
    expect(Object.keys(steps).sort()).toEqual(['booted', 'installed', 'joined', 'registered', 'seeded']);
  });
});
