/**
 * nats-server's monitor as metrics (roles/controller/nats-metrics.ts). The fixtures were captured
 * from nats-server 2.9.10 with `-js`: standalone, a cluster of three with its meta leader, and the
 * same server after its two peers were stopped (no leader); each has one stream (FIXTURE, 5
 * messages, 230 bytes) and one consumer.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exposition } from '../../../core/metrics.js';
import { NatsMetrics, parseJsz, parseVarz, readNatsMetrics } from '../../../roles/controller/nats-metrics.js';
import { fetchProbe, type MonitorProbe } from '../../../roles/controller/health.js';
import { natsServerAvailable, startNatsServer } from '../../../scripts/lib/nats-server.js';
import { freePort } from '../../../scripts/lib/ports.js';

const fixture = (name: string) => readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8');

/** A probe answering from fixtures by path. */
function probeOf(answers: Record<string, string | Error>): MonitorProbe & { calls: string[] } {
  const calls: string[] = [];
  const probe = async (url: string) => {
    calls.push(url);
    const a = answers[new URL(url).pathname];
    if (a instanceof Error) throw a;
    return a === undefined ? { status: 404, body: 'not found' } : { status: 200, body: a };
  };
  return Object.assign(probe, { calls });
}

/** The value of an unlabelled series in `text`. */
function value(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('parseVarz / parseJsz', () => {
  it("reads a standalone server's numbers; standalone JetStream counts as having a leader", () => {
    expect(parseVarz(fixture('nats-varz-standalone.json'))).toEqual({
      connections: 0,
      inMsgs: 8,
      outMsgs: 8,
      inBytes: expect.any(Number) as number,
      outBytes: expect.any(Number) as number,
      memBytes: 13451264,
      cpuPercent: 0,
    });
    expect(parseJsz(fixture('nats-jsz-standalone.json'))).toEqual({
      leaderKnown: true,
      clusterSize: 1,
      streams: 1,
      consumers: 1,
      messages: 5,
      bytes: 230,
    });
  });

  it('reads the meta cluster: its size, and whether a leader is known', () => {
    expect(parseJsz(fixture('nats-jsz-cluster.json'))).toMatchObject({ leaderKnown: true, clusterSize: 3, streams: 1 });
    expect(parseJsz(fixture('nats-jsz-no-leader.json'))).toMatchObject({ leaderKnown: false, clusterSize: 3 });
  });

  it('JetStream off is no leader; absent fields are 0; what is not an object is refused', () => {
    expect(parseJsz('{"disabled": true}')).toEqual({ leaderKnown: false, clusterSize: 0, streams: 0, consumers: 0, messages: 0, bytes: 0 });
    expect(parseVarz('{"connections": "many"}').connections).toBe(0);
    expect(() => parseVarz('[1]')).toThrow('/varz is not a JSON object');
    expect(() => parseJsz('not json')).toThrow();
  });
});

describe('NatsMetrics', () => {
  it('sets the metrics at each scrape from the followed monitor URL, counters by growth', async () => {
    const varz = JSON.parse(fixture('nats-varz-cluster.json')) as Record<string, number>;
    const answers: Record<string, string> = { '/varz': JSON.stringify(varz), '/jsz': fixture('nats-jsz-cluster.json') };
    const probe = probeOf(answers);
    const metrics = new NatsMetrics(probe);
    metrics.follow('http://127.0.0.1:8222');
    try {
      let text = await exposition();
      expect(probe.calls).toEqual(['http://127.0.0.1:8222/varz', 'http://127.0.0.1:8222/jsz']);
      expect(value(text, 'mammatus_jetstream_meta_leader_known')).toBe(1);
      expect(value(text, 'mammatus_jetstream_meta_cluster_size')).toBe(3);
      expect(value(text, 'mammatus_jetstream_messages')).toBe(5);
      expect(value(text, 'mammatus_nats_mem_bytes')).toBe(varz.mem);
      const before = value(text, 'mammatus_nats_in_msgs_total')!;
      // The server received 10 more and lost its leader; a port change (a reload) moves the collector over.
      answers['/varz'] = JSON.stringify({ ...varz, in_msgs: varz.in_msgs + 10 });
      answers['/jsz'] = fixture('nats-jsz-no-leader.json');
      metrics.follow('http://127.0.0.1:9222');
      probe.calls.length = 0;
      text = await exposition();
      expect(probe.calls).toEqual(['http://127.0.0.1:9222/varz', 'http://127.0.0.1:9222/jsz']);
      expect(value(text, 'mammatus_nats_in_msgs_total')).toBe(before + 10);
      expect(value(text, 'mammatus_jetstream_meta_leader_known')).toBe(0);
    } finally {
      metrics.stop();
    }
  });

  it('a monitor that does not answer: leader_known goes to 0 and the failure is counted', async () => {
    await readNatsMetrics(
      probeOf({ '/varz': fixture('nats-varz-standalone.json'), '/jsz': fixture('nats-jsz-standalone.json') }),
      'http://x',
    );
    expect(value(await exposition(), 'mammatus_jetstream_meta_leader_known')).toBe(1);
    const metrics = new NatsMetrics(probeOf({ '/varz': new Error('ECONNREFUSED'), '/jsz': new Error('ECONNREFUSED') }));
    metrics.follow('http://127.0.0.1:8222');
    try {
      const text = await exposition();
      expect(value(text, 'mammatus_jetstream_meta_leader_known')).toBe(0);
      expect(text).toMatch(/mammatus_metrics_collector_errors_total\{collector="nats"\} [1-9]/);
    } finally {
      metrics.stop();
    }
    // Stopped (the role left the node): its series go with it, none stays stale.
    expect(await exposition()).not.toMatch(/^mammatus_jetstream_meta_leader_known /m);
    expect(await exposition()).not.toMatch(/^mammatus_nats_in_msgs_total /m);
  });
});

describe.skipIf(!natsServerAvailable())('NatsMetrics on a real nats-server -js', () => {
  it('reads its monitor: a standalone server is its own leader (a failed read would say 0)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mammatus-nats-metrics-'));
    const monitorPort = await freePort();
    const server = await startNatsServer({ name: 'm1', dir, monitorPort });
    const metrics = new NatsMetrics(fetchProbe);
    try {
      metrics.follow(`http://127.0.0.1:${monitorPort}`);
      const text = await exposition();
      expect(value(text, 'mammatus_jetstream_meta_leader_known')).toBe(1);
      expect(value(text, 'mammatus_jetstream_meta_cluster_size')).toBe(1);
      expect(value(text, 'mammatus_nats_mem_bytes')).toBeGreaterThan(1_000_000);
    } finally {
      metrics.stop();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
