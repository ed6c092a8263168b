/**
 * `mammatus instance launch|start|stop|delete` and `mammatus image import`: parsing, exit codes,
 * and what they write (a real nats-server for the registry; the fake LXD socket for images).
 */
import { cliRunner } from '../../helpers/run-cli.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomMac } from '../../../agent/cli/launch.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';
import { InstanceRegistry } from '../../../src/registry/registry.js';
import { connectNats } from '../../../core/nats.js';
import { asyncOp, lxdError, operation, startFakeLxd, sync } from '../../helpers/fake-lxd.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-compute-cli-'));
/** The test server's admin credentials, once it runs. */
let credentials: string[] = [];
const run = cliRunner(() => credentials);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('instance launch|start|stop|delete: usage', () => {
  it('exits 2 without --image, with a bad MAC, a missing file or --tag image; 1 without --node and no serf to choose one', async () => {
    expect((await run('instance', 'launch', 'web', '--node', 'cn1')).code).toBe(2);
    const unchosen = await run('instance', 'launch', 'web', '--image', 'debian-12');
    expect(unchosen).toMatchObject({ code: 1, err: expect.stringContaining('choosing a compute node needs the local serf agent') });
    const mac = await run('instance', 'launch', 'web', '--image', 'd', '--node', 'cn1', '--mac', '01:00:5e:00:00:01');
    expect(mac).toMatchObject({ code: 2, err: expect.stringContaining('multicast') });
    expect((await run('instance', 'launch', 'web', '--image', 'd', '--node', 'cn1', '--user-data', '/nonexistent')).code).toBe(2);
    // The image tag is --image's: another value would have the compute node launch another image.
    const image = await run('instance', 'launch', 'web', '--image', 'd', '--node', 'cn1', '--tag', 'image=e');
    expect(image).toMatchObject({ code: 2, err: expect.stringContaining('--tag image: set by --image') });
    expect((await run('instance', 'stop')).code).toBe(2);
  });

  it('exits 1 when the registry cannot be reached', async () => {
    const r = await run('instance', 'launch', 'web', '--image', 'd', '--node', 'cn1', '--nats', 'nats://127.0.0.1:1');
    expect(r).toMatchObject({ code: 1, err: expect.stringContaining('cannot reach NATS') });
  });

  it('makes locally administered unicast MACs', () => {
    expect(randomMac(Uint8Array.from([1, 2, 3, 0xab, 0xff]))).toBe('02:01:02:03:ab:ff');
    expect(randomMac()).toMatch(/^02(:[0-9a-f]{2}){5}$/);
  });
});

describe.skipIf(!natsServerAvailable())('instance launch|start|stop|delete against a registry', () => {
  let nats: NatsServer;
  let registry: InstanceRegistry;
  let close: () => Promise<void>;
  beforeAll(async () => {
    nats = await startNatsServer({ name: 'cli', dir: path.join(tmp, 'nats') });
    const nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    credentials = ['--credentials', nats.credentialsFile];
    registry = await InstanceRegistry.open(nc);
    close = () => nc.close();
  }, 30_000);
  afterAll(async () => {
    await close?.();
    await nats?.stop();
  });

  it('launch records node, image, MAC, user-data, keys and state running', async () => {
    writeFileSync(path.join(tmp, 'ud'), '#cloud-config\n');
    writeFileSync(path.join(tmp, 'keys'), '# mine\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7 me@host\n');
    const r = await run(
      'instance',
      'launch',
      'web',
      '--image',
      'debian-12',
      '--node',
      'cn1',
      '--user-data',
      path.join(tmp, 'ud'),
      '--ssh-key',
      path.join(tmp, 'keys'),
      '--tag',
      'app=web',
      '--nats',
      nats.url,
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^launching web \(i-[0-9a-f]{17}\) on cn1, MAC 02(:[0-9a-f]{2}){5}$/);
    const rec = await registry.get('web');
    expect(rec).toMatchObject({
      node: 'cn1',
      state: 'running',
      tags: { image: 'debian-12', app: 'web' },
      ssh_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7 me@host'],
    });
    expect(Buffer.from(rec.user_data!, 'base64').toString()).toBe('#cloud-config\n');
    const dup = await run('instance', 'launch', 'web', '--image', 'debian-12', '--node', 'cn1', '--nats', nats.url);
    expect(dup).toMatchObject({ code: 1, err: expect.stringContaining('name web is already used') });
  });

  it('start, stop and delete set the recorded state; a node-less record is refused', async () => {
    const r = await run(
      'instance',
      'launch',
      'db',
      '--image',
      'debian-12',
      '--node',
      'cn1',
      '--mac',
      '02-00-00-00-00-99',
      '--nats',
      nats.url,
    );
    expect(r.code, r.err).toBe(0);
    expect((await registry.get('db')).macs).toEqual(['02:00:00:00:00:99']);
    for (const [verb, state] of [
      ['stop', 'stopped'],
      ['start', 'running'],
      ['delete', 'deleting'],
    ] as const) {
      expect((await run('instance', verb, 'db', '--nats', nats.url)).code).toBe(0);
      expect((await registry.get('db')).state).toBe(state);
    }
    await registry.register({ name: 'pxe', macs: ['02:00:00:00:00:98'] });
    expect(await run('instance', 'delete', 'pxe', '--nats', nats.url)).toMatchObject({
      code: 1,
      err: expect.stringContaining('instance rm'),
    });
    expect((await run('instance', 'stop', 'nope', '--nats', nats.url)).code).toBe(1);
  });
});

describe('image import', () => {
  it('uploads the tarball and points the alias; exit 2 without the file, 1 when LXD refuses', async () => {
    const lxd = await startFakeLxd();
    try {
      const file = path.join(tmp, 'image.tar.gz');
      writeFileSync(file, 'not really an image');
      lxd.on('POST /1.0/images', () => asyncOp(operation('op1', 'Success', { metadata: { fingerprint: 'ab'.repeat(32), size: 19 } })));
      lxd.on('POST /1.0/images/aliases', () => sync(null));
      const r = await run('image', 'import', file, '--alias', 'debian-12', '--lxd-socket', lxd.socketPath);
      expect(r).toMatchObject({ code: 0, out: `imported ${file} as debian-12 (abababababab)` });
      expect(JSON.parse(lxd.requests.at(-1)!.body.toString())).toEqual({ name: 'debian-12', target: 'ab'.repeat(32), description: '' });
      expect((await run('image', 'import', path.join(tmp, 'none.tar.gz'), '--alias', 'x', '--lxd-socket', lxd.socketPath)).code).toBe(2);
      expect((await run('image', 'import', file, '--lxd-socket', lxd.socketPath)).code).toBe(2);
      lxd.on('POST /1.0/images', () => lxdError(400, 'Invalid image file'));
      expect(await run('image', 'import', file, '--alias', 'x', '--lxd-socket', lxd.socketPath)).toMatchObject({
        code: 1,
        err: expect.stringContaining('Invalid image file'),
      });
      expect((await run('image', 'import', file, '--alias', 'x', '--lxd-socket', path.join(tmp, 'no.socket'))).code).toBe(1);
    } finally {
      await lxd.close();
    }
  });
});
