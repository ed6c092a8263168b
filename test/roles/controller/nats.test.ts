/** The nats-server supervisor with a fake spawner: crash restarts with backoff, SIGHUP vs restart, stop. */
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NatsSupervisor, type NatsLaunch } from '../../../roles/controller/nats.js';
import { fakeSpawn } from '../../helpers/fake-spawn.js';

const log = pino({ level: 'silent' });
const launch = (restartKey = 'k1', confPath = '/etc/c/nats.conf'): NatsLaunch => ({ binary: 'nats-server', confPath, restartKey });

// Restart backoff runs on fake timers: the tests pass time instead of waiting for it.
beforeEach(() => void vi.useFakeTimers());
afterEach(() => void vi.useRealTimers());

describe('NatsSupervisor', () => {
  it('runs nats-server -c CONF and restarts it after a crash, keeping its last lines', async () => {
    const spawn = fakeSpawn();
    const sup = new NatsSupervisor({ spawn, log, minRestartMs: 10 });
    expect(await sup.apply(launch())).toBe('started');
    expect(spawn.started[0]).toMatchObject({ file: 'nats-server', args: ['-c', '/etc/c/nats.conf'] });
    expect(sup.process.pid).toBe(1001);
    spawn.started[0].say('[FTL] Error listening on port: 0.0.0.0:4222, "address already in use"');
    spawn.started[0].exit(1);
    await vi.waitFor(() => expect(spawn.started.length === 2 && sup.process.running).toBe(true), { timeout: 1000, interval: 10 });
    expect(sup.process.crashes).toBe(1);
    expect(sup.process.lastLines()).toEqual(['[FTL] Error listening on port: 0.0.0.0:4222, "address already in use"']);
    expect(spawn.started[1].args).toEqual(['-c', '/etc/c/nats.conf']);
    await sup.stop();
    expect(spawn.started[1].signals).toEqual(['SIGTERM']);
    await vi.advanceTimersByTimeAsync(40);
    expect(spawn.started.length).toBe(2);
    expect(sup.process.running).toBe(false);
  });

  it("starts it as the launch's user, again after a crash, and restarts it when the user changes", async () => {
    const spawn = fakeSpawn();
    const sup = new NatsSupervisor({ spawn, log, minRestartMs: 10 });
    await sup.apply({ ...launch(), user: 'nats' });
    spawn.started[0].exit(1);
    await vi.waitFor(() => expect(spawn.started.length === 2 && sup.process.running).toBe(true), { timeout: 1000, interval: 10 });
    expect(spawn.started.map((p) => p.user)).toEqual(['nats', 'nats']);
    // Same file and key, other user: a SIGHUP cannot change the user, so it restarts.
    expect(await sup.apply(launch())).toBe('restarted');
    expect(spawn.started[2].user).toBeUndefined();
    await sup.stop();
  });

  it('backs off between crash restarts, doubling up to the maximum', async () => {
    const spawn = fakeSpawn();
    const sup = new NatsSupervisor({ spawn, log, minRestartMs: 20, maxRestartMs: 40 });
    await sup.apply(launch());
    const times: number[] = [Date.now()];
    for (let i = 0; i < 3; i++) {
      spawn.started[i].exit(1);
      await vi.waitFor(() => expect(spawn.started.length === i + 2).toBe(true), { timeout: 1000, interval: 10 });
      times.push(Date.now());
    }
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    expect(gaps[0]).toBeGreaterThanOrEqual(18);
    expect(gaps[1]).toBeGreaterThanOrEqual(38);
    expect(gaps[2]).toBeGreaterThanOrEqual(38);
    expect(gaps[2]).toBeLessThan(200);
    await sup.stop();
  });

  it('sends SIGHUP when only the routes changed, and restarts for anything else', async () => {
    const spawn = fakeSpawn();
    const sup = new NatsSupervisor({ spawn, log });
    await sup.apply(launch('k1'));
    expect(await sup.apply(launch('k1'))).toBe('reloaded');
    expect(spawn.started.length).toBe(1);
    expect(spawn.started[0].signals).toEqual(['SIGHUP']);
    expect(await sup.apply(launch('k2'))).toBe('restarted');
    expect(spawn.started[0].signals).toEqual(['SIGHUP', 'SIGTERM']);
    expect(spawn.started.length).toBe(2);
    expect(await sup.apply({ ...launch('k2'), binary: '/opt/nats-server' })).toBe('restarted');
    expect(spawn.started[2].file).toBe('/opt/nats-server');
    expect(sup.process.crashes).toBe(0);
    await sup.stop();
  });

  it('starts a crashed server at once on apply instead of waiting out the backoff', async () => {
    const spawn = fakeSpawn();
    const sup = new NatsSupervisor({ spawn, log, minRestartMs: 10_000 });
    await sup.apply(launch('k1'));
    spawn.started[0].exit(1);
    await vi.waitFor(() => expect(!sup.process.running).toBe(true), { timeout: 1000, interval: 10 });
    expect(await sup.apply(launch('k1'))).toBe('started');
    expect(spawn.started.length).toBe(2);
    expect(spawn.started[1].signals).toEqual([]);
    await sup.stop();
  });

  it('ensureRunning starts only when nothing runs', async () => {
    const spawn = fakeSpawn();
    const sup = new NatsSupervisor({ spawn, log });
    sup.ensureRunning(launch());
    sup.ensureRunning(launch('other'));
    expect(spawn.started.length).toBe(1);
    await sup.stop();
  });

  it('sends SIGKILL when a stopped server ignores SIGTERM', async () => {
    const spawn = fakeSpawn({ ignore: ['SIGHUP', 'SIGTERM'] });
    const sup = new NatsSupervisor({ spawn, log, stopTimeoutMs: 20 });
    await sup.apply(launch());
    const stopped = sup.stop();
    await vi.advanceTimersByTimeAsync(20);
    await stopped;
    expect(spawn.started[0].signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(sup.process.running).toBe(false);
  });
});
