/**
 * `mammatus volume …`: sizes, choosing a storage node, exit codes, and what the commands write
 * (a real nats-server for the registries; no serf, so `--node` and `--initiator` are needed).
 */
import { cliRunner } from '../../helpers/run-cli.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { chooseStorageNode, parseStorageCapacity, type StorageSurvey } from '../../../agent/cli/volume-placement.js';
import { observedStatus } from '../../../agent/cli/volume.js';
import { formatSize, parseSize } from '../../../agent/cli/volume-wait.js';
import { connectNats } from '../../../core/nats.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';
import { InstanceRegistry } from '../../../src/registry/registry.js';
import { serveVolumeRequests } from '../../../src/registry/volume-writes.js';
import { VolumeRegistry } from '../../../src/registry/volumes.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-volume-cli-'));
let credentials: string[] = [];
const run = cliRunner(() => credentials);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const G = 1024 ** 3;
const IQN = 'iqn.1993-08.org.debian:01:cn1';

const member = (name: string, role = 'storage', status: Member['status'] = 'alive'): Member => ({
  name,
  addr: '10.0.0.1',
  port: 7946,
  status,
  tags: { role, mammatus: '1' },
});

describe('volume sizes and placement', () => {
  it('parses sizes in powers of 1024 and prints them back', () => {
    expect(parseSize('512M')).toBe(512 * 1024 ** 2);
    expect(parseSize('10G')).toBe(10 * G);
    expect(parseSize('10GiB')).toBe(10 * G);
    expect(parseSize('1t')).toBe(1024 * G);
    expect(parseSize('1048576')).toBe(1024 ** 2);
    for (const bad of ['', '10X', '-1G', '1.5G', '10 G B', '512K', '99999999999T']) expect(() => parseSize(bad)).toThrow(/--size/);
    expect(formatSize(10 * G)).toBe('10G');
    expect(formatSize(1.5 * 1024 * G)).toBe('1.5T');
    expect(formatSize(512 * 1024 ** 2)).toBe('512M');
  });

  it('reads flat and nested storage capacity answers, and refuses others', () => {
    expect(parseStorageCapacity('{"node":"st1","ready":true,"free_bytes":5}')).toMatchObject({ node: 'st1', free_bytes: 5 });
    expect(parseStorageCapacity('{"node":"x","ready":true,"cpus":2,"storage":{"ready":true,"free_bytes":7}}')).toMatchObject({
      node: 'x',
      free_bytes: 7,
    });
    expect(parseStorageCapacity('{"node":"cn1","ready":true,"cpus":4}')).toBe('no storage capacity in its answer');
    expect(parseStorageCapacity('{"error":"boom"}')).toBe('error: boom');
    expect(parseStorageCapacity('nope')).toBe('bad answer');
  });

  it('picks the ready node with the most room, counting volumes still being made; names why none fits', () => {
    const survey: StorageSurvey = {
      members: [member('st1'), member('st2'), member('st3'), member('st4', 'storage', 'failed')],
      answers: new Map([
        ['st1', { node: 'st1', ready: true, free_bytes: 100 * G, path: '/srv/vol' }],
        ['st2', { node: 'st2', ready: true, free_bytes: 80 * G }],
        ['st3', { node: 'st3', ready: false, reason: 'tgtd down', free_bytes: 900 * G }],
      ]),
    };
    expect(chooseStorageNode(survey, 10 * G)).toEqual({ node: 'st1', path: '/srv/vol' });
    expect(chooseStorageNode(survey, 10 * G, new Map([['st1', 30 * G]]))).toEqual({ node: 'st2' });
    const none = chooseStorageNode(survey, 200 * G);
    expect(none).toEqual({ error: expect.stringMatching(/st1: only .* bytes free; .*st3: not ready: tgtd down; st4: not alive/) });
    const silent = chooseStorageNode({ members: [member('st1')], answers: new Map([['st1', 'no storage capacity in its answer']]) }, G);
    expect(silent).toEqual({
      error: expect.stringMatching(/no storage node answers mammatus.storage-capacity yet \(st1\); name one with --node/),
    });
  });

  it('shows a node that Serf says is gone or down instead of its stale report', () => {
    const v = { node: 'st1', observed: { state: 'serving' } } as Parameters<typeof observedStatus>[0];
    expect(observedStatus(v, undefined)).toBe('serving');
    expect(observedStatus(v, new Map([['st1', 'alive']]))).toBe('serving');
    expect(observedStatus(v, new Map([['st1', 'failed']]))).toBe('node failed');
    expect(observedStatus(v, new Map())).toBe('node gone');
  });
});

describe('volume commands: usage', () => {
  it('exits 2 on a bad size or missing flag, 1 without --node and no serf to choose one', async () => {
    expect((await run('volume', 'create', 'd1', '--size', '10X', '--node', 'st1')).code).toBe(2);
    expect((await run('volume', 'create', 'd1')).code).toBe(2);
    expect((await run('volume', 'attach', 'd1')).code).toBe(2);
    expect((await run('volume', 'attach', 'd1', '--instance', 'web', '--initiator', 'bogus')).code).toBe(2);
    const unchosen = await run('volume', 'create', 'd1', '--size', '1G');
    expect(unchosen).toMatchObject({ code: 1, err: expect.stringContaining('choosing a storage node needs the local serf agent') });
  });
});

describe.skipIf(!natsServerAvailable())('volume commands against a registry', () => {
  let nats: NatsServer;
  let volumes: VolumeRegistry;
  let close: () => Promise<void>;
  beforeAll(async () => {
    nats = await startNatsServer({ name: 'volcli', dir: path.join(tmp, 'nats') });
    const nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    credentials = ['--credentials', nats.credentialsFile];
    volumes = await VolumeRegistry.open(nc);
    const instances = await InstanceRegistry.open(nc);
    await instances.register({ name: 'web', node: 'cn1', macs: ['02:00:00:00:00:01'] });
    await instances.register({ name: 'pxe', macs: ['02:00:00:00:00:02'] });
    const api = serveVolumeRequests(nc, () => VolumeRegistry.open(nc), pino({ level: 'silent' }));
    close = async () => {
      api.close();
      await nc.close();
    };
  }, 30_000);
  afterAll(async () => {
    await close?.();
    await nats?.stop();
  });
  const nats_ = () => ['--nats', nats.url];

  it('creates on the named node (a warning when serf cannot check it), refuses a taken name', async () => {
    const r = await run('volume', 'create', 'd1', '--size', '10G', '--node', 'st1', ...nats_());
    expect(r, r.err).toMatchObject({ code: 0, out: 'creating d1 (10G) on st1', err: expect.stringContaining('warning: cannot check st1') });
    expect(await volumes.get('d1')).toMatchObject({ size_bytes: 10 * G, node: 'st1', state: 'creating' });
    expect(await run('volume', 'create', 'd1', '--size', '1G', '--node', 'st2', ...nats_())).toMatchObject({
      code: 1,
      err: expect.stringContaining('d1 already exists'),
    });
    expect((await run('volume', 'create', 'Bad', '--size', '1G', '--node', 'st2', ...nats_())).code).toBe(2);
  });

  it('lists and shows with the CHAP secret hidden unless asked', async () => {
    const list = await run('volume', 'list', ...nats_());
    expect(list.out).toMatch(/^NAME\s+SIZE\s+NODE\s+STATE\s+ATTACHED\s+OBSERVED$/m);
    expect(list.out).toMatch(/^d1\s+10G\s+st1\s+creating\s+-\s+pending$/m);
    const secret = (await volumes.get('d1')).chap.secret;
    const json = await run('volume', 'list', '--json', ...nats_());
    expect(json.out).not.toContain(secret);
    expect((await run('volume', 'show', 'd1', ...nats_())).out).not.toContain(secret);
    expect((await run('volume', 'show', 'd1', '--show-secret', ...nats_())).out).toContain(secret);
    expect(await run('volume', 'show', 'nope', ...nats_())).toMatchObject({ code: 1, err: 'error: no volume nope' });
  });

  it('attaches to an instance on its compute node, refuses a second instance, detaches', async () => {
    const r = await run('volume', 'attach', 'd1', '--instance', 'web', '--path', '/mnt/data', '--initiator', IQN, ...nats_());
    expect(r, r.err).toMatchObject({ code: 0, out: `attaching d1 to web on cn1 (initiator ${IQN})` });
    expect((await volumes.get('d1')).attached).toEqual({ instance: 'web', node: 'cn1', initiator: IQN, path: '/mnt/data' });
    // Without --initiator the compute node's Serf tag is asked for: no serf here.
    expect(await run('volume', 'attach', 'd1', '--instance', 'web', ...nats_())).toMatchObject({
      code: 1,
      err: expect.stringContaining('pass --initiator'),
    });
    expect(await run('volume', 'attach', 'd1', '--instance', 'pxe', '--initiator', IQN, ...nats_())).toMatchObject({
      code: 1,
      err: expect.stringContaining('runs on no compute node'),
    });
    expect(await run('volume', 'attach', 'd1', '--instance', 'ghost', '--initiator', IQN, ...nats_())).toMatchObject({ code: 1 });
    expect((await run('volume', 'list', ...nats_())).out).toMatch(/^d1\s+10G\s+st1\s+creating\s+web:\/mnt\/data\s+pending$/m);
    expect(await run('volume', 'rm', 'd1', ...nats_())).toMatchObject({ code: 1, err: expect.stringContaining('detach it first') });
    expect(await run('volume', 'detach', 'd1', ...nats_())).toMatchObject({ code: 0, out: 'detaching d1 from web' });
    expect((await volumes.get('d1')).attached).toBeUndefined();
  });

  it('instance launch --volume attaches at creation; a volume attached elsewhere stops the launch before it is recorded', async () => {
    await volumes.create({ name: 'lv1', size_bytes: G, node: 'st1' });
    await volumes.create({ name: 'lv2', size_bytes: G, node: 'st1' });
    expect((await run('instance', 'launch', 'db', '--image', 'd', '--node', 'cn2', '--volume', 'lv1:rel', ...nats_())).code).toBe(2);
    const noIqn = await run('instance', 'launch', 'db', '--image', 'd', '--node', 'cn2', '--volume', 'lv1', ...nats_());
    expect(noIqn).toMatchObject({ code: 1, err: expect.stringContaining('pass --initiator') });
    const r = await run(
      'instance',
      'launch',
      'db',
      '--image',
      'd',
      '--node',
      'cn2',
      '--volume',
      'lv1:/srv',
      '--volume',
      'lv2',
      '--initiator',
      IQN,
      ...nats_(),
    );
    expect(r, r.err).toMatchObject({ code: 0, err: expect.stringContaining('attaching lv1:/srv, lv2 to db') });
    expect((await volumes.get('lv1')).attached).toEqual({ instance: 'db', node: 'cn2', initiator: IQN, path: '/srv' });
    expect((await volumes.get('lv2')).attached).toEqual({ instance: 'db', node: 'cn2', initiator: IQN });
    const taken = await run(
      'instance',
      'launch',
      'db2',
      '--image',
      'd',
      '--node',
      'cn2',
      '--volume',
      'lv1',
      '--initiator',
      IQN,
      ...nats_(),
    );
    expect(taken).toMatchObject({ code: 1, err: expect.stringContaining('attached to db; detach it first') });
    expect((await run('instance', 'show', 'db2', ...nats_())).code).toBe(1); // never recorded
  });

  it('grows only', async () => {
    expect(await run('volume', 'resize', 'd1', '--size', '20G', ...nats_())).toMatchObject({ code: 0, out: 'd1 is now 20G' });
    expect(await run('volume', 'resize', 'd1', '--size', '5G', ...nats_())).toMatchObject({
      code: 1,
      err: expect.stringContaining('only grow'),
    });
  });

  it('create --wait ends when the storage node serves it, or on its error', async () => {
    const served = run('volume', 'create', 'd2', '--size', '1G', '--node', 'st1', '--wait', '10s', ...nats_());
    await until(() => volumes.find('d2'));
    await volumes.report('d2', 'st1', { state: 'serving', lun: 1 });
    expect(await served).toMatchObject({ code: 0, out: 'd2 is served by st1' });
    const failed = run('volume', 'create', 'd3', '--size', '1G', '--node', 'st1', '--wait', '10s', ...nats_());
    await until(() => volumes.find('d3'));
    await volumes.report('d3', 'st1', { state: 'error', error: 'disk full' });
    expect(await failed).toMatchObject({ code: 1, err: expect.stringContaining('d3: disk full') });
  });

  it('rm marks deleting and --wait ends when the storage node removed it; --force removes at once', async () => {
    const gone = run('volume', 'rm', 'd2', '--wait', '10s', ...nats_());
    await until(async () => ((await volumes.find('d2'))?.state === 'deleting' ? true : undefined));
    await volumes.report('d2', 'st1', { state: 'absent' });
    expect(await gone).toMatchObject({ code: 0, out: 'd2 is removed' });
    expect(await run('volume', 'rm', 'd3', '--force', ...nats_())).toMatchObject({ code: 0 });
    expect(await volumes.find('d3')).toBeUndefined();
  });
});

/** Polls `check` until it gives something (at most 5 s). */
async function until<T>(check: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('timed out');
}
