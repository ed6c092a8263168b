/**
 * The package's unit and maintainer scripts (issue 16): the unit keeps its sandbox (and, where
 * systemd-analyze runs, its exposure score stays at or below the one docs/install.md records);
 * postinst creates the `mammatus` system user; purge keeps a JetStream store that holds streams.
 * postrm runs for real, against a throw-away root given as $DPKG_ROOT (dpkg's chrootless mode).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { commandAvailable, removeDir } from './chroot.js';

const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEB = path.join(ROOT, 'packaging/deb');
const UNIT = path.join(DEB, 'mammatus-agent.service');

/** The unit's [Service] settings, name → values (a name may repeat). */
function serviceSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) section = line;
    else if (section === '[Service]' && line && !line.startsWith('#')) {
      const [name, ...value] = line.split('=');
      out.set(name, [...(out.get(name) ?? []), value.join('=')]);
    }
  }
  return out;
}

/** The exposure score docs/install.md records for the unit ("Service hardening"). */
function recordedScore(): number {
  const doc = readFileSync(path.join(ROOT, 'docs/install.md'), 'utf8');
  const m = /exposure of the unit shipped now: \*\*(\d+\.\d)\*\*/.exec(doc);
  expect(m, 'docs/install.md records the unit exposure score').not.toBeNull();
  return Number(m![1]);
}

describe('mammatus-agent.service', () => {
  const settings = serviceSettings(readFileSync(UNIT, 'utf8'));
  const one = (name: string) => settings.get(name)?.join(' ');

  it('keeps the key sandbox directives', () => {
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('full');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes');
    expect(one('RestrictAddressFamilies')).toBe('AF_UNIX AF_INET AF_INET6 AF_NETLINK');
    expect(one('RestrictNamespaces')).toBe('net');
    expect(one('SystemCallFilter')).toBe('@system-service');
    for (const name of ['ProtectKernelModules', 'ProtectKernelLogs', 'ProtectControlGroups', 'ProtectClock', 'ProtectHostname'])
      expect(one(name), name).toBe('yes');
    // Never: V8's JIT needs writable-then-executable memory.
    expect(settings.has('MemoryDenyWriteExecute')).toBe(false);
    // The gateway writes net.ipv4.ip_forward.
    expect(settings.has('ProtectKernelTunables')).toBe(false);
  });

  it('bounds the capabilities to the list the unit justifies', () => {
    const caps = one('CapabilityBoundingSet')!.split(/\s+/).sort();
    expect(caps).toEqual(
      [
        'CAP_CHOWN',
        'CAP_DAC_OVERRIDE',
        'CAP_FOWNER',
        'CAP_KILL',
        'CAP_NET_ADMIN',
        'CAP_NET_BIND_SERVICE',
        'CAP_NET_RAW',
        'CAP_SETGID',
        'CAP_SETUID',
        'CAP_SYS_ADMIN',
      ].sort(),
    );
    const text = readFileSync(UNIT, 'utf8');
    for (const cap of caps) expect(text, `a comment says why ${cap}`).toMatch(new RegExp(`^#.*${cap}`, 'm'));
  });

  it('leaves every /etc and /usr path a role writes by default writable', () => {
    const rw = one('ReadWritePaths')!.split(/\s+/);
    expect(rw).toEqual(
      expect.arrayContaining(['/etc/mammatus', '-/etc/sysctl.d', '-/usr/lib/mammatus', '-/etc/grafana', '-/etc/telegraf']),
    );
    expect(one('ConfigurationDirectory')).toBe('mammatus');
  });

  const analyze = commandAvailable('systemd-analyze');
  it.skipIf(!analyze)(
    `scores no worse than docs/install.md records (systemd-analyze security --offline)${analyze ? '' : ' (skipped: no systemd-analyze)'}`,
    async (ctx) => {
      const r = await exec('systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT]).catch(
        (err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
      );
      const m = /Overall exposure level for \S+: (\d+\.\d)/.exec(r.stdout);
      if (!m && /offline/i.test(r.stderr)) ctx.skip(`this systemd-analyze has no --offline (${r.stderr.trim()})`);
      expect(m, r.stdout + r.stderr).not.toBeNull();
      console.log(`[packaging] systemd-analyze security: ${m![1]} (recorded: ${recordedScore()})`);
      expect(Number(m![1])).toBeLessThanOrEqual(recordedScore());
    },
  );
});

describe('postinst', () => {
  it('creates the mammatus system user and group, idempotently, and the package depends on adduser', () => {
    const text = readFileSync(path.join(DEB, 'postinst'), 'utf8');
    expect(text).toMatch(
      /if ! getent passwd mammatus >\/dev\/null; then\n\s+adduser --system --group --no-create-home --home \/nonexistent/,
    );
    expect(readFileSync(path.join(DEB, 'control.in'), 'utf8')).toMatch(/^Depends: .*\badduser\b/m);
  });
});

describe('postrm purge', () => {
  const roots: string[] = [];
  afterAll(() => roots.forEach(removeDir));

  /** A throw-away root with the agent's state: credentials, a gateway file and a NATS store. */
  const fakeRoot = (streams: boolean): string => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-postrm-'));
    roots.push(root);
    const put = (rel: string, text = 'x\n') => {
      mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      writeFileSync(path.join(root, rel), text);
    };
    put('var/lib/mammatus/credentials.json');
    put('var/lib/mammatus/.events.json');
    put('var/lib/mammatus/gateway/dnsmasq.leases');
    put('var/lib/mammatus/controller/members');
    // The meta group's files exist in any clustered store, with or without streams.
    put('var/lib/mammatus/nats/jetstream/$SYS/_js_/_meta_/meta.inf');
    if (streams) {
      put('var/lib/mammatus/nats/jetstream/MAMMATUS/streams/KV_instances/meta.inf');
      put('var/lib/mammatus/nats/jetstream/MAMMATUS/streams/KV_instances/msgs/1.blk');
    }
    mkdirSync(path.join(root, 'etc/mammatus/agent.d'), { recursive: true });
    return root;
  };
  const purge = (root: string) => exec('sh', [path.join(DEB, 'postrm'), 'purge'], { env: { ...process.env, DPKG_ROOT: root } });

  it('removes all of /var/lib/mammatus when the store holds no stream', async () => {
    const root = fakeRoot(false);
    const { stdout } = await purge(root);
    expect(stdout).toBe('');
    expect(existsSync(path.join(root, 'var/lib/mammatus'))).toBe(false);
    expect(existsSync(path.join(root, 'etc/mammatus'))).toBe(false);
  });

  it('keeps a JetStream store that holds streams, removes the rest, and says how to delete it', async () => {
    const root = fakeRoot(true);
    const { stdout } = await purge(root);
    const store = path.join(root, 'var/lib/mammatus/nats');
    expect(existsSync(path.join(store, 'jetstream/MAMMATUS/streams/KV_instances/msgs/1.blk'))).toBe(true);
    expect(existsSync(path.join(store, 'jetstream/$SYS/_js_/_meta_/meta.inf'))).toBe(true);
    for (const gone of ['credentials.json', '.events.json', 'gateway', 'controller'])
      expect(existsSync(path.join(root, 'var/lib/mammatus', gone)), gone).toBe(false);
    expect(stdout).toContain('purge kept the JetStream store(s) below, which hold stream data');
    expect(stdout).toContain(`  ${store}\n`);
    expect(stdout).toContain(`rm -rf ${store}`);
  });

  it('keeps only the store in a custom directory under the state dir', async () => {
    const root = fakeRoot(false);
    const custom = path.join(root, 'var/lib/mammatus/stores/js-main');
    mkdirSync(path.join(custom, 'jetstream/ACC/streams/orders'), { recursive: true });
    writeFileSync(path.join(root, 'var/lib/mammatus/stores/notes'), 'x');
    const { stdout } = await purge(root);
    expect(existsSync(path.join(custom, 'jetstream/ACC/streams/orders'))).toBe(true);
    expect(existsSync(path.join(root, 'var/lib/mammatus/stores/notes'))).toBe(false);
    expect(existsSync(path.join(root, 'var/lib/mammatus/nats'))).toBe(false);
    expect(stdout).toContain(`  ${custom}\n`);
  });
});
