/**
 * `mammatus node join` on a planned host (issue 19), against a small HTTP server standing in for
 * the metadata service's join route (it answers the token request and forwards the POST as the
 * metadata service does, for one known MAC) backed by the real host API on a real nats-server. The
 * host ends up with credentials (0600, its own seed) that NATS accepts, the authority's key, Serf's
 * config with the gossip key and the controllers to join (0600) and its role tag; a second host with
 * the same secret, an unknown machine, a changed answer and an answer for another key are refused
 * and write nothing; the secret is never printed.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_JOIN_SUBJECT, type HostJoinAnswer } from '../../core/host-record.js';
import { connectNats } from '../../core/nats.js';
import { createAuthority, mintCredentials, readCredentials, userKey } from '../../core/trust.js';
import { joinHost, nodeJoinCommand, type NodeJoinOptions } from '../../agent/cli/node-join.js';
import { runCli } from '../../agent/cli/program.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { serveHosts } from '../../src/hosts/hosted.js';
import { Hosts } from '../../src/hosts/hosts.js';
import { JoinSecrets } from '../../src/hosts/joins.js';
import { seal } from '../../src/hosts/sealed.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { Roster } from '../../src/trust/roster.js';

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`node join tests skipped: ${skip}`);

const GOSSIP_KEY = Buffer.alloc(32, 9).toString('base64');
const MAC = '52:54:00:00:01:01';
const mode = (f: string) => statSync(f).mode & 0o777;

describe.skipIf(Boolean(skip))('mammatus node join', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-nodejoin-'));
  let nats: NatsServer;
  let nc: NatsConnection;
  let hosts: Hosts;
  let joins: JoinSecrets;
  let roster: Roster;
  let api: { close(): void };
  let http: Server;
  let url = '';
  let hostId = '';
  let callerMac = MAC;
  let secretFile = '';
  /** How the stand-in behaves: forward (as the metadata service), unknown caller, or a changed answer. */
  let behaviour: 'forward' | 'unknown' | 'tamper' | 'forge' | 'lose' = 'forward';
  const bodies: string[] = [];

  const opts = (name: string): NodeJoinOptions => ({
    secretFile,
    metadataUrl: url,
    stateDir: path.join(tmp, name, 'state'),
    serfConfig: path.join(tmp, name, 'serf', 'mammatus.json'),
    serfTags: path.join(tmp, name, 'serf', 'tags.json'),
    agentConfig: path.join(tmp, name, 'agent.d', '10-bootstrap.yaml'),
  });

  /** The stand-in for `PUT /latest/api/token` and `POST /mammatus/join` of the metadata service. */
  const answer = async (method: string | undefined, url: string | undefined, token: unknown, body: string): Promise<[number, string]> => {
    if (behaviour === 'unknown') return [404, 'Not Found'];
    if (method === 'PUT' && url === '/latest/api/token') return [200, 'token-1'];
    if (method !== 'POST' || url !== '/mammatus/join') return [405, 'Method Not Allowed'];
    if (token !== 'token-1') return [401, 'Unauthorized'];
    bodies.push(body);
    const { secret, nkey, box } = JSON.parse(body) as Record<string, string>;
    if (behaviour === 'forge') {
      // Someone on the LAN seals a grant of their own making to the host's box key.
      const other = mintCredentials(createAuthority(), 'metal-1', ['compute'], new Date());
      const { seed: _s, ...grant } = other;
      void _s;
      return [200, JSON.stringify({ ok: true, sealed: seal(box, { ...grant, retry_join: ['10.66.0.1:7946'] }) })];
    }
    const msg = await nc.request(HOST_JOIN_SUBJECT, JSON.stringify({ host_id: hostId, mac: callerMac, secret, nkey, box }), {
      timeout: 10_000,
    });
    const a = JSON.parse(msg.string()) as HostJoinAnswer;
    if (behaviour === 'lose') {
      // As the metadata service that gave up waiting: the controllers took the secret, the host hears 503.
      behaviour = 'forward';
      return [503, JSON.stringify({ ok: false, error: 'no controller answered; try again' })];
    }
    if (behaviour === 'tamper' && a.sealed)
      return [
        200,
        JSON.stringify({ ...a, sealed: a.sealed.replace(/.(.{30})$/, (m, rest: string) => `${m.startsWith('A') ? 'B' : 'A'}${rest}`) }),
      ];
    return [200, JSON.stringify(a)];
  };

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'nodejoin', dir: path.join(tmp, 'nats') });
    nc = await connectNats(nats.url, { name: 'metadata-service', credentials: nats.credentials });
    const registry = await InstanceRegistry.open(nc);
    joins = await JoinSecrets.open(nc);
    roster = await Roster.open(nc);
    hosts = new Hosts(registry, joins);
    api = serveHosts(
      nc,
      { credentials: () => nats.credentials, gossipKey: () => Promise.resolve(GOSSIP_KEY), replicas: () => 1 },
      () => [{ name: 'ctl-1', addr: '127.0.0.1', port: 7946, status: 'alive', tags: { role: 'controller' } }],
      pino({ level: 'silent' }),
    );
    http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        answer(req.method, req.url, req.headers['x-aws-ec2-metadata-token'], Buffer.concat(chunks).toString('utf8')).then(
          ([status, text]) => res.writeHead(status, { 'content-type': 'application/json' }).end(text),
          (err: unknown) => res.writeHead(500).end(String(err)),
        );
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const addr = http.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    const h = await hosts.register({ name: 'metal-1', mac: MAC, roles: ['compute', 'storage'], arch: 'bios' });
    hostId = h.id;
    secretFile = path.join(tmp, 'join-secret');
    writeFileSync(secretFile, `${(await joins.get(h.id))!.secret}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    api?.close();
    await new Promise((r) => http?.close(r));
    await nc?.close();
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('refuses an unknown machine, a changed answer and a forged one, writing nothing and keeping the secret', async () => {
    behaviour = 'unknown';
    await expect(joinHost(opts('a'), 10)).rejects.toThrow(/does not know this machine/);
    behaviour = 'forge';
    await expect(joinHost(opts('a'), 10)).rejects.toThrow(/trust tag is for another key/);
    expect(existsSync(opts('a').stateDir!)).toBe(false);
    expect(existsSync(opts('a').serfConfig!)).toBe(false);
    // A changed answer spends the secret (the controllers admitted the key), so it goes last here
    // on a host of its own: the rest of the file uses metal-1.
    const spare = await hosts.register({ name: 'metal-9', mac: '52:54:00:00:01:09', roles: ['compute'], arch: 'bios' });
    const saved = [hostId, secretFile, callerMac] as const;
    [hostId, callerMac, secretFile] = [spare.id, '52:54:00:00:01:09', path.join(tmp, 'spare-secret')];
    writeFileSync(secretFile, (await joins.get(spare.id))!.secret, { mode: 0o600 });
    try {
      behaviour = 'tamper';
      await expect(joinHost(opts('b'), 10)).rejects.toThrow(/the join answer does not open/);
      expect(existsSync(opts('b').stateDir!)).toBe(false);
      expect(existsSync(opts('b').serfConfig!)).toBe(false);
    } finally {
      [hostId, secretFile, callerMac] = saved;
    }
    expect(await joins.get(hostId)).toBeDefined();
  });

  it('joins: credentials with its own seed that NATS accepts, Serf config with the gossip key, the role tag', async () => {
    behaviour = 'forward';
    const lines: string[] = [];
    const io = { out: (l: string) => void lines.push(l), err: (l: string) => void lines.push(l) };
    expect(await nodeJoinCommand(opts('metal-1'), io)).toBe(0);
    const o = opts('metal-1');
    const credsFile = path.join(o.stateDir!, 'credentials.json');
    expect(mode(credsFile)).toBe(0o600);
    const creds = (await readCredentials(credsFile))!;
    expect(creds).toMatchObject({ node: 'metal-1', roles: ['compute', 'storage'], authority: nats.credentials.authority });
    expect(creds.authority_seed).toBeUndefined();
    expect((await roster.get('metal-1'))?.nkey).toBe(userKey(creds));
    // The seed never travelled: the request held only the public key.
    expect(bodies.some((b) => b.includes(creds.seed))).toBe(false);
    expect(readFileSync(path.join(o.stateDir!, 'authority.pub'), 'utf8')).toBe(`${creds.authority}\n`);
    expect(mode(path.join(o.stateDir!, 'authority.pub'))).toBe(0o644);
    expect(mode(o.serfConfig!)).toBe(0o600);
    const serf = JSON.parse(readFileSync(o.serfConfig!, 'utf8')) as Record<string, unknown>;
    expect(serf).toMatchObject({ encrypt_key: GOSSIP_KEY, node_name: 'metal-1', retry_join: ['127.0.0.1:7946'], tags_file: o.serfTags });
    expect(serf.rpc_auth).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(readFileSync(o.agentConfig!, 'utf8')).toContain(`rpc_auth: ${String(serf.rpc_auth)}`);
    expect(mode(o.agentConfig!)).toBe(0o600);
    expect(JSON.parse(readFileSync(o.serfTags!, 'utf8'))).toEqual({ role: 'compute,storage' });
    const secret = readFileSync(secretFile, 'utf8').trim();
    expect(lines.join('\n')).toContain('restart serf');
    expect(lines.join('\n')).not.toContain(secret);

    nats.trust.enter(creds);
    await nats.reload();
    const asHost = await connectNats(nats.url, { name: 'metal-1', timeoutMs: 3000, credentials: creds });
    await asHost.flush();
    await asHost.close();

    // Again on the same host: nothing is asked. On another host with the same secret: refused.
    expect(await joinHost(o, 10)).toMatchObject({ node: 'metal-1', already: true });
    await expect(joinHost(opts('thief'), 10)).rejects.toThrow(/refused the join: host metal-1 joined already/);
    expect(existsSync(opts('thief').stateDir!)).toBe(false);
  });

  it('joins although the first answer was lost (the metadata service gave up): the retry is answered again', async () => {
    const h = await hosts.register({ name: 'metal-7', mac: '52:54:00:00:01:07', roles: ['compute'], arch: 'bios' });
    const saved = [hostId, secretFile, callerMac] as const;
    [hostId, callerMac, secretFile] = [h.id, '52:54:00:00:01:07', path.join(tmp, 'lost-secret')];
    writeFileSync(secretFile, (await joins.get(h.id))!.secret, { mode: 0o600 });
    try {
      behaviour = 'lose';
      const before = bodies.length;
      expect(await joinHost(opts('metal-7'), 10)).toMatchObject({ node: 'metal-7', roles: ['compute'] });
      expect(bodies.length - before).toBe(2);
      const creds = (await readCredentials(path.join(opts('metal-7').stateDir!, 'credentials.json')))!;
      expect((await roster.get('metal-7'))?.nkey).toBe(userKey(creds));
    } finally {
      behaviour = 'forward';
      [hostId, secretFile, callerMac] = saved;
    }
  });

  it('reads the secret only from its file and says so without quoting it', async () => {
    const bad = path.join(tmp, 'bad-secret');
    writeFileSync(bad, 'not-a-secret-value', { mode: 0o600 });
    await expect(joinHost({ ...opts('c'), secretFile: bad }, 10)).rejects.toThrow(/does not hold a join secret/);
    await expect(joinHost({ ...opts('c'), secretFile: bad }, 10)).rejects.not.toThrow(/not-a-secret-value/);
    await expect(joinHost({ ...opts('c'), secretFile: path.join(tmp, 'missing') }, 10)).rejects.toThrow(/ENOENT/);
    const err: string[] = [];
    const code = await runCli(['node', 'join', '--metadata-url', url], { out: () => undefined, err: (l) => void err.push(l) }, {});
    expect(code).not.toBe(0);
    expect(err.join('\n')).toMatch(/--secret-file/);
  });
});
