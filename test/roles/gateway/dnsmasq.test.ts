/** The dnsmasq supervisor with a fake spawner: restarts after a crash, not after a stop. */
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DnsmasqSupervisor } from '../../../roles/gateway/dnsmasq.js';
import type { Daemon, Spawn } from '../../../core/contracts.js';

function fakeSpawn() {
  const started: { args: readonly string[]; exit: (code: number | null) => void; killed: string[] }[] = [];
  const spawn: Spawn = (_file, args) => {
    let exit!: (code: number | null) => void;
    const exited = new Promise<number | null>((resolve) => (exit = resolve));
    const entry = { args, exit, killed: [] as string[] };
    started.push(entry);
    const daemon: Daemon = {
      pid: 1000 + started.length,
      exited,
      kill: (signal = 'SIGTERM') => {
        entry.killed.push(signal);
        exit(null);
      },
    };
    return daemon;
  };
  return { spawn, started };
}

// Restart backoff runs on fake timers: the tests pass time instead of waiting for it.
beforeEach(() => void vi.useFakeTimers());
afterEach(() => void vi.useRealTimers());

describe('DnsmasqSupervisor', () => {
  it('runs dnsmasq in the foreground with the config, and restarts it after a crash', async () => {
    const { spawn, started } = fakeSpawn();
    const sup = new DnsmasqSupervisor({ spawn, log: pino({ level: 'silent' }), minRestartMs: 10 });
    await sup.restart('/etc/g/dnsmasq.conf');
    expect(started[0].args).toEqual(['--keep-in-foreground', '--log-facility=-', '--conf-file=/etc/g/dnsmasq.conf']);
    started[0].exit(2); // crashed
    await vi.waitFor(() => expect(started.length === 2 && sup.process.running).toBe(true), { timeout: 1000, interval: 10 });
    expect(sup.process.crashes).toBe(1);
    await sup.stop();
    expect(started[1].killed).toEqual(['SIGTERM']);
    await vi.advanceTimersByTimeAsync(50);
    expect(started.length).toBe(2);
    expect(sup.process.running).toBe(false);
  });

  it('restart() replaces the running process without counting a crash', async () => {
    const { spawn, started } = fakeSpawn();
    const sup = new DnsmasqSupervisor({ spawn, log: pino({ level: 'silent' }), minRestartMs: 10 });
    await sup.restart('/a.conf');
    await sup.restart('/b.conf');
    await vi.advanceTimersByTimeAsync(50);
    expect(started.map((s) => s.args[2])).toEqual(['--conf-file=/a.conf', '--conf-file=/b.conf']);
    expect(sup.process.crashes).toBe(0);
    sup.ensureRunning('/b.conf');
    expect(started.length).toBe(2);
    await sup.stop();
  });
});
