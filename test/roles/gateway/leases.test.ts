/** Lease file and lease-hook parsing; the rendered hook run by the real /bin/sh. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLeaseEvents, parseLeases, recentLeaseEvents, renderLeaseHook } from '../../../roles/gateway/leases.js';
import { tailBudget } from '../../../core/tail.js';

describe('parseLeases', () => {
  it('reads dnsmasq lease lines, skipping malformed ones, sorted by IP', () => {
    const text = [
      '1764100000 02:00:00:00:00:0a 10.88.0.110 * 01:02:00:00:00:00:00:0a',
      'garbage',
      '0 02:00:00:00:00:0B 10.88.0.12 storage1 *',
      '1764100000 not-a-mac 10.88.0.9 x *',
    ].join('\n');
    expect(parseLeases(text)).toEqual([
      { mac: '02:00:00:00:00:0b', ip: '10.88.0.12', name: 'storage1', expires: 0 },
      { mac: '02:00:00:00:00:0a', ip: '10.88.0.110', name: '', expires: 1764100000 },
    ]);
  });
});

describe('the lease hook', () => {
  it('appends add/old/del and tftp events, ignores other actions, and always exits 0', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-hook-'));
    try {
      const spool = path.join(dir, "lease events's");
      const hook = path.join(dir, 'hook');
      writeFileSync(hook, renderLeaseHook(spool), { mode: 0o755 });
      const run = (args: string[], env: Record<string, string> = {}) =>
        execFileSync('/bin/sh', [hook, ...args], { env: { ...env, PATH: '/usr/bin:/bin' } });
      run(['add', '02:00:00:00:00:0a', '10.88.0.110', 'client1'], { DNSMASQ_TAGS: 'lan known' });
      run(['init']);
      run(['arp-add', '02:00:00:00:00:0a', '10.88.0.110']);
      run(['tftp', '1234', '10.88.0.110', '/srv/tftp/ipxe.efi']);
      run(['del', '02:00:00:00:00:0a', '10.88.0.110']);
      expect(parseLeaseEvents(readFileSync(spool, 'utf8'))).toEqual([
        { action: 'add', fields: ['02:00:00:00:00:0a', '10.88.0.110', 'client1', 'lan known'] },
        { action: 'tftp', fields: ['1234', '10.88.0.110', '/srv/tftp/ipxe.efi'] },
        { action: 'del', fields: ['02:00:00:00:00:0a', '10.88.0.110', '', ''] },
      ]);
      // An unwritable spool must not make dnsmasq see a failing hook.
      writeFileSync(hook, renderLeaseHook('/nonexistent/dir/spool'), { mode: 0o755 });
      expect(() => run(['add', 'm', 'i'])).not.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the lease spool stays bounded', () => {
  const mac = (i: number) => `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`;

  it('the hook renames the spool to .1 once it passes the size, then appends to a new one', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-hook-'));
    try {
      const spool = path.join(dir, 'lease-events');
      const hook = path.join(dir, 'hook');
      const max = 200;
      writeFileSync(hook, renderLeaseHook(spool, max), { mode: 0o755 });
      const line = (i: number) => `add\t${mac(i)}\t10.88.0.${i}\thost-${i}\tlan\n`;
      for (let i = 1; i <= 12; i++)
        execFileSync('/bin/sh', [hook, 'add', mac(i), `10.88.0.${i}`, `host-${i}`], {
          env: { DNSMASQ_TAGS: 'lan', PATH: '/usr/bin:/bin' },
        });
      // Every event is in one of the two files, in order, and neither grew past the size plus one line.
      const [older, newer] = [readFileSync(`${spool}.1`, 'utf8'), readFileSync(spool, 'utf8')];
      const all = older + newer;
      expect(all.endsWith(line(12))).toBe(true);
      expect(newer.startsWith(line(Number(/10\.88\.0\.(\d+)/.exec(newer)![1])))).toBe(true);
      for (const f of [spool, `${spool}.1`]) expect(statSync(f).size).toBeLessThanOrEqual(max + line(12).length);
      // Events lost are only those of a .1 replaced, never the newest ones.
      const kept = parseLeaseEvents(all).map((e) => e.fields[1]);
      expect(kept).toEqual(kept.map((_, i) => `10.88.0.${12 - kept.length + 1 + i}`));
      expect(kept.length).toBeGreaterThanOrEqual(Math.floor(max / line(12).length));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an old, huge spool is rotated away by the next event', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-hook-'));
    try {
      const spool = path.join(dir, 'lease-events');
      const hook = path.join(dir, 'hook');
      writeFileSync(hook, renderLeaseHook(spool), { mode: 0o755 });
      writeFileSync(spool, 'x'.repeat(2 * 1024 * 1024));
      execFileSync('/bin/sh', [hook, 'del', mac(1), '10.88.0.1']);
      expect(statSync(`${spool}.1`).size).toBe(2 * 1024 * 1024);
      expect(readFileSync(spool, 'utf8')).toBe(`del\t${mac(1)}\t10.88.0.1\t\t\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('recent events are read from the end of the spool, then of .1, oldest first, within the budget', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-spool-'));
    try {
      const spool = path.join(dir, 'lease-events');
      const ev = (i: number, who: number) => `old\t${mac(who)}\t10.88.0.${who}\tn${i}\t\n`;
      writeFileSync(`${spool}.1`, Array.from({ length: 50 }, (_, i) => ev(i, i % 2)).join(''));
      writeFileSync(spool, Array.from({ length: 3 }, (_, i) => ev(50 + i, 1)).join(''));
      const about = (who: number) => (e: { fields: readonly string[] }) => e.fields[0] === mac(who);
      const names = (events: { fields: readonly string[] }[]) => events.map((e) => e.fields[2]);
      expect(names(await recentLeaseEvents(spool, about(1), 5))).toEqual(['n47', 'n49', 'n50', 'n51', 'n52']);
      expect(names(await recentLeaseEvents(spool, about(0), 2))).toEqual(['n46', 'n48']);
      expect(names(await recentLeaseEvents(path.join(dir, 'none'), about(0), 2))).toEqual([]);
      const budget = tailBudget(3 * ev(50, 1).length);
      expect(names(await recentLeaseEvents(spool, about(0), 5, budget))).toEqual([]);
      expect(budget.bytesRead).toBe(3 * ev(50, 1).length);
      expect(existsSync(`${spool}.1`)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
