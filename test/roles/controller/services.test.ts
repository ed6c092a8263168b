/** Hosted services: start in order, failures reported and retried, membership passed on, stop in reverse. */
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { HostedServices } from '../../../roles/controller/services.js';
import { type HostedService, type HostedServiceContext } from '../../../core/contracts.js';

const log = pino({ level: 'silent' });
const ctx = { node: 'c1', natsUrl: 'nats://127.0.0.1:4222', members: [] as Member[] };

/** A service that records what happened to it; `fail` makes its next starts reject. */
function recorder(name: string, events: string[], opts: { fail?: number } = {}) {
  let failures = opts.fail ?? 0;
  const seen: HostedServiceContext[] = [];
  const service: HostedService = {
    name,
    async start(c) {
      seen.push(c);
      events.push(`start ${name}`);
      if (failures-- > 0) throw new Error(`${name} cannot bind 0.0.0.0:9324`);
    },
    membersChanged(members) {
      events.push(`members ${name} ${members.length}`);
    },
    async stop() {
      events.push(`stop ${name}`);
    },
  };
  return { service, seen };
}

describe('HostedServices', () => {
  it('starts in order with the context and a logger, passes membership on, stops in reverse', async () => {
    const events: string[] = [];
    const a = recorder('metadata', events);
    const b = recorder('messaging', events);
    const hosted = new HostedServices([a.service, b.service], log);
    await hosted.start(ctx);
    expect(a.seen[0]).toMatchObject(ctx);
    expect(typeof a.seen[0].log.info).toBe('function');
    hosted.membersChanged([{ name: 'x', addr: '10.0.0.1', port: 7946, tags: {}, status: 'alive' }]);
    await hosted.start(ctx); // already running: nothing happens
    await hosted.stop();
    expect(events).toEqual([
      'start metadata',
      'start messaging',
      'members metadata 1',
      'members messaging 1',
      'stop messaging',
      'stop metadata',
    ]);
  });

  it('tells a service about membership that changed while it or an earlier one was starting', async () => {
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = recorder('roster', events);
    const b = recorder('hosts', events);
    const hosted = new HostedServices([{ ...slow.service, start: (c) => slow.service.start(c).then(() => gate) }, b.service], log);
    const started = hosted.start(ctx);
    await new Promise((r) => setTimeout(r, 10));
    const members: Member[] = [{ name: 'c1', addr: '10.0.0.1', port: 7946, tags: { role: 'controller' }, status: 'alive' }];
    hosted.membersChanged(members); // roster is starting: not told yet
    release();
    await started;
    expect(b.seen[0].members).toBe(members);
    expect(events).toEqual(['start roster', 'members roster 1', 'start hosts']);
    await hosted.stop();
  });

  it('reports every failed service in one error, keeps the others running, and retries the failed one later', async () => {
    const events: string[] = [];
    const a = recorder('metadata', events, { fail: 1 });
    const b = recorder('messaging', events);
    const hosted = new HostedServices([a.service, b.service], log);
    await expect(hosted.start(ctx)).rejects.toThrow('hosted service failed to start: metadata: metadata cannot bind 0.0.0.0:9324');
    expect(hosted.running()).toEqual(['messaging']);
    hosted.membersChanged([]); // the failed one is not told
    await hosted.start(ctx);
    expect(hosted.running()).toEqual(['metadata', 'messaging']);
    expect(events).toEqual(['start metadata', 'start messaging', 'members messaging 0', 'start metadata']);
    await hosted.stop();
  });

  it('gives up waiting for a hung start, never starts it twice, and stops it if it finishes after a stop', async () => {
    const events: string[] = [];
    let finish!: () => void;
    const slow: HostedService = {
      name: 'slow',
      start: () => {
        events.push('start slow');
        return new Promise<void>((r) => (finish = r));
      },
      stop: async () => void events.push('stop slow'),
    };
    const hosted = new HostedServices([slow], log, 30);
    await expect(hosted.start(ctx)).rejects.toThrow('slow: did not start within 0s');
    await expect(hosted.start(ctx)).rejects.toThrow('did not start');
    expect(events).toEqual(['start slow']);
    const stopping = hosted.stop();
    finish();
    await stopping;
    await vi.waitFor(() => expect(events).toEqual(['start slow', 'stop slow']), { timeout: 1000, interval: 2 });
    expect(hosted.running()).toEqual([]);
  });

  it('survives a service that throws on membership or on stop', async () => {
    const bad: HostedService = {
      name: 'bad',
      start: async () => undefined,
      membersChanged: () => {
        throw new Error('boom');
      },
      stop: async () => {
        throw new Error('boom');
      },
    };
    const hosted = new HostedServices([bad], log);
    await hosted.start(ctx);
    expect(() => hosted.membersChanged([])).not.toThrow();
    await expect(hosted.stop()).resolves.toBeUndefined();
    expect(hosted.running()).toEqual([]);
  });

  it('stops the services started with another NATS URL and names them', async () => {
    const events: string[] = [];
    const hosted = new HostedServices([recorder('a', events).service, recorder('b', events).service], log);
    await hosted.start(ctx);
    expect(await hosted.stopIfUrlChanged(ctx.natsUrl)).toEqual([]);
    expect(await hosted.stopIfUrlChanged('nats://127.0.0.1:4333')).toEqual(['b', 'a']);
    expect(hosted.running()).toEqual([]);
  });

  it('refuses two services with one name', () => {
    const events: string[] = [];
    expect(() => new HostedServices([recorder('x', events).service, recorder('x', events).service], log)).toThrow(
      'two hosted services are named "x"',
    );
  });

  it('after a config reload restarts only the services whose config changed, with the last context and current members', async () => {
    const events: string[] = [];
    const config = { metadata: 'm1', messaging: 'q1' };
    const a = recorder('metadata', events);
    const b = recorder('messaging', events);
    const hosted = new HostedServices(
      [
        { ...a.service, configKey: () => config.metadata },
        { ...b.service, configKey: () => config.messaging },
      ],
      log,
    );
    expect(await hosted.restartChanged()).toEqual([]); // nothing started yet
    await hosted.start(ctx);
    expect(await hosted.restartChanged()).toEqual([]);
    const members: Member[] = [{ name: 'c2', addr: '10.0.0.2', port: 7946, tags: { role: 'controller' }, status: 'alive' }];
    hosted.membersChanged(members);
    config.messaging = 'q2'; // e.g. a credential revoked
    expect(await hosted.restartChanged()).toEqual(['messaging']);
    expect(b.seen.at(-1)).toMatchObject({ ...ctx, members });
    expect(await hosted.restartChanged()).toEqual([]);
    expect(events.slice(-2)).toEqual(['stop messaging', 'start messaging']);
    await hosted.stop();
  });
});
