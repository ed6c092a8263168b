/** Lease file and lease-hook parsing; the rendered hook run by the real /bin/sh. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLeaseEvents, parseLeases, renderLeaseHook } from '../../../roles/gateway/leases.js';

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
