/**
 * The compute role's volume work (`ComputeVolumes`): the attached-volume feed drives volume passes
 * (open-iscsi as a recording runner, LXD in memory), a feed that cannot be opened is reported and
 * opened again at the next request, passes never overlap, and the status line says what is attached.
 */
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { VolumeRecord } from '../../../core/volume-record.js';
import { ComputeVolumes, type AttachedVolumeFeed } from '../../../roles/compute/volumes.js';
import type { Member } from '../../../core/contracts.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { dev, iscsi, memoryLxd, vol } from '../../helpers/iscsi-fakes.js';

const log = pino({ level: 'silent' });
const st1: Member = { name: 'st1', addr: '10.88.0.31', port: 7946, tags: { role: 'storage' }, status: 'alive' };

/** A feed the test drives: `push` delivers a new list; `fail` makes the next opens reject. */
function testFeed() {
  let onChange: ((v: readonly VolumeRecord[]) => void) | undefined;
  const opened: string[] = [];
  let failing = 0;
  let closed = 0;
  const feed: AttachedVolumeFeed = async (servers, node, change) => {
    if (failing > 0) {
      failing--;
      throw new Error('no controller answers');
    }
    opened.push(`${node} ${servers.join(',')}`);
    onChange = change;
    return { close: async () => void closed++ };
  };
  return {
    feed,
    opened,
    closed: () => closed,
    fail: (n: number) => void (failing = n),
    push: (v: readonly VolumeRecord[]) => onChange?.(v),
  };
}

let work: ComputeVolumes | undefined;
afterEach(async () => {
  await work?.close();
  work = undefined;
});

function build(f: ReturnType<typeof testFeed>, l = memoryLxd({ web1: {} }), run = iscsi()) {
  work = new ComputeVolumes({
    feed: f.feed,
    lxd: () => l.lxd,
    run,
    files: memoryFiles(),
    node: 'cn1',
    members: () => [st1],
    log,
    deviceExists: async () => true,
  });
  return { work, l, run };
}

/** Waits until `check` holds (the feed's callbacks start passes in the background). */
async function settle(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

describe('ComputeVolumes', () => {
  it('a feed change attaches the volume: login, then the LXD device; the status says so', async () => {
    const f = testFeed();
    const { work, l, run } = build(f);
    work.follow(['nats://10.88.0.10:4222']);
    await settle(() => f.opened.length === 1);
    expect(f.opened).toEqual(['cn1 nats://10.88.0.10:4222']);
    f.push([vol('data', 'web1', '/mnt/data')]);
    await settle(() => work.report()?.attached.length === 1);
    expect(l.instances.get('web1')!.devices['mammatus-vol-data']).toEqual({ type: 'disk', source: dev('data'), path: '/mnt/data' });
    expect(run.calls.filter((c) => c.includes('--login'))).toHaveLength(1);
    expect(work.summary()).toBe('1 volume attached');
  });

  it('detach: the device goes, then the session; a request with nothing attached runs nothing', async () => {
    const f = testFeed();
    const { work, l, run } = build(f);
    work.follow(['nats://10.88.0.10:4222']);
    await settle(() => f.opened.length === 1);
    f.push([vol('data')]);
    await settle(() => work.report()?.attached.length === 1);
    f.push([]);
    await settle(() => l.instances.get('web1')!.devices['mammatus-vol-data'] === undefined);
    await work.passNow();
    expect(run.calls.some((c) => c.includes('--logout'))).toBe(true);
    expect(work.summary()).toBeUndefined();
    // The pass after the logout changed nothing: requests stop running passes.
    await work.passNow();
    const calls = run.calls.length;
    work.request();
    await work.passNow().then(() => undefined);
    expect(run.calls.length).toBe(calls + 2); // only the explicit pass's two reads
  });

  it('a feed that cannot be opened is reported and opened again at the next request', async () => {
    const f = testFeed();
    f.fail(1);
    const { work } = build(f);
    work.follow(['nats://10.88.0.10:4222']);
    expect(work.summary()).toBe('connecting to the volume registry');
    await settle(() => work.summary()?.startsWith('cannot') === true);
    expect(work.summary()).toBe('cannot open the volume registry: no controller answers');
    work.request();
    await settle(() => f.opened.length === 1);
    expect(work.summary()).toBeUndefined();
  });

  it('a waiting volume (not served yet) and a failed login are in the status line', async () => {
    const f = testFeed();
    const { work } = build(f, memoryLxd({ web1: {}, db: {} }), iscsi([], [], 'bad'));
    work.follow(['nats://10.88.0.10:4222']);
    await settle(() => f.opened.length === 1);
    const creating: VolumeRecord = { ...vol('new', 'db'), observed: { state: 'error', error: 'tgtd down' } };
    f.push([vol('data'), vol('bad', 'db'), creating]);
    await settle(() => work.report() !== undefined);
    expect(work.summary()).toBe(
      '1 volume attached, 1 waiting, 1 failing (bad: login: login refused: CHAP authentication failed (exit 24))',
    );
    expect(work.report()?.failed).toEqual([{ volume: 'bad', error: 'login: login refused: CHAP authentication failed (exit 24)' }]);
  });

  it('the portal the storage node reported wins over its Serf address', async () => {
    const f = testFeed();
    const { work, l } = build(f);
    work.follow(['nats://10.88.0.10:4222']);
    await settle(() => f.opened.length === 1);
    f.push([{ ...vol('data'), observed: { state: 'serving', lun: 1, portal: '10.99.0.5' } }]);
    await settle(() => work.report()?.attached.length === 1);
    expect(l.instances.get('web1')!.devices['mammatus-vol-data']?.source).toBe(dev('data').replace('10.88.0.31', '10.99.0.5'));
  });

  it('a registry that never answers shows as connecting, and close does not wait for it', async () => {
    work = new ComputeVolumes({
      feed: () => new Promise(() => undefined),
      lxd: () => memoryLxd({}).lxd,
      run: iscsi(),
      files: memoryFiles(),
      node: 'cn1',
      members: () => [],
      log,
    });
    work.follow(['nats://10.88.0.10:4222']);
    expect(work.summary()).toBe('connecting to the volume registry');
    await work.close();
  });

  it('close ends the feed; a late open is closed at once', async () => {
    const f = testFeed();
    const { work } = build(f);
    work.follow(['nats://10.88.0.10:4222']);
    await work.close();
    expect(f.closed()).toBe(1);
    work.request();
    expect(f.opened).toHaveLength(1);
  });
});
