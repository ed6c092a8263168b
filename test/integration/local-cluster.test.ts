/**
 * Keeps the README's first command honest: the local cluster starts, reports all four roles ok,
 * stops; and, as root, its storage node really serves: a volume made with the CLI is `serving` on
 * storage-1 and answers an iSCSI login with its CHAP, from this host, as the attached initiator;
 * and this host, the gateway's WAN side, reaches a balancer made with the CLI.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { LAN, WAN, localLanLeftovers } from '../../scripts/lib/local-lan.js';
import { RUN_DIR } from '../../scripts/lib/local-root.js';
import { STORAGE_DIR, STORAGE_PORTAL } from '../../scripts/lib/local-storage.js';
import { runCommand } from '../../scripts/lib/lxd-node.js';
import { missingTools } from '../../scripts/lib/netns-bed.js';
import { sleep, until } from '../../scripts/lib/wait.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import { skipReason } from './harness.js';

const exec = promisify(execFile);
const skip = skipReason();
const asRoot = process.getuid?.() === 0;

describe.skipIf(Boolean(skip))('the local cluster (scripts/local-cluster.ts)', () => {
  it('starts one node per role, prints a status with every role ok, and tears down', async () => {
    // --no-image: as root with lxd, a missing image is not built (minutes); a cached one is imported.
    const { stdout } = await exec(process.execPath, ['--import', 'tsx', 'scripts/local-cluster.ts', '--once', '--no-image', '--no-demo'], {
      timeout: 90_000,
    });
    // The gateway role needs root (it then runs in a network namespace); without root that node has none.
    for (const role of asRoot ? ['gateway', 'compute', 'storage', 'controller'] : ['compute', 'storage', 'controller']) {
      expect(stdout).toMatch(new RegExp(`^${role}-1\\s.*alive\\s+${role}\\s.*ok$`, 'm'));
    }
    if (!asRoot) expect(stdout).toMatch(/^gateway-1\s.*alive\s+-\s.*ok$/m);
    // Storage-1 follows the registry with its own tgtd as root (and tgt installed), and says why not otherwise.
    if (asRoot && !missingTools(['tgtd'])) expect(stdout).toMatch(/^ {2}storage-1 storage: 0 volumes, .*\(tgt\)$/m);
    else expect(stdout).toMatch(/serve volumes on storage-1|storage-1 serves no volume: /);
    expect(stdout).toContain('Stopped.');
    if (asRoot) expect(localLanLeftovers()).toEqual([]);
    if (asRoot) expect((await runCommand('ip', ['link', 'show', 'mmc-wan'])).code).not.toBe(0);
  }, 120_000);
});

const storageSkip =
  skip ??
  (asRoot ? undefined : "needs root (storage-1's tgtd runs in network and mount namespaces of its own)") ??
  missingTools(['tgtd', 'tgtadm', 'tgt-admin', 'nsenter', 'iscsi-ls', 'iscsi-inq', 'nats-server', 'haproxy', 'curl']);
if (storageSkip) console.warn(`local cluster storage test skipped: ${storageSkip}`);

describe.skipIf(Boolean(storageSkip))("the local cluster's storage node and gateway balancer, as root", () => {
  let cluster: ChildProcess | undefined;
  let out = '';
  const exited = () => cluster!.exitCode !== null || cluster!.signalCode !== null;
  const stop = async () => {
    if (!cluster || exited()) return;
    const gone = new Promise((r) => cluster!.once('exit', r));
    cluster.kill('SIGINT');
    await Promise.race([gone, sleep(60_000)]);
  };
  afterAll(stop, 90_000);

  it('serves a volume made with the CLI: serving on storage-1, an iSCSI login with its CHAP; a balancer answers on the gateway WAN; Ctrl-C removes it all', async () => {
    cluster = spawn(process.execPath, ['--import', 'tsx', 'scripts/local-cluster.ts', '--no-image', '--no-demo'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cluster.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    cluster.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    // Up, or gone (until() takes a throw for "not yet": an exit must end the wait by a value).
    const state = await until('"Press Ctrl-C"', () => (exited() ? 'exited' : out.includes('Press Ctrl-C') && 'up'), 150_000);
    expect(state, out).toBe('up');
    const exported = /export SERF_RPC_AUTH=(\S+) MAMMATUS_CREDENTIALS=(\S+)/.exec(out);
    expect(exported, out).not.toBeNull();
    const env = { SERF_RPC_AUTH: exported![1], MAMMATUS_CREDENTIALS: exported![2] };
    const nats = ['--nats', `nats://${LAN.host}:4232`];
    const mammatus = (args: string[]) =>
      runCommand(process.execPath, ['dist/mammatus.mjs', '--rpc-addr', '127.0.0.1:7375', ...args, ...nats], env, 60_000);
    const initiator = 'iqn.2026-12.test.mammatus:lc-storage';

    const created = await mammatus(['volume', 'create', 'lcvol', '--size', '64M', '--wait']);
    expect(created.code, `${created.stdout}\n${created.stderr}`).toBe(0);
    expect(created.stdout).toContain('lcvol is served by storage-1');
    const shown = await mammatus(['volume', 'show', 'lcvol', '--json', '--show-secret']);
    const v = JSON.parse(shown.stdout) as VolumeRecord;
    expect(v).toMatchObject({ node: 'storage-1', state: 'available', lun: 1, observed: { state: 'serving', lun: 1 } });
    const iqn = `iqn.${v.created_at.slice(0, 7)}.mammatus:volume.lcvol`;
    // Its backing file is storage-1's: under .cluster/storage-1/volumes, bound at the default path.
    expect(statSync('.cluster/storage-1/volumes/lcvol.img').size).toBe(64 << 20);
    // Its tgt config (CHAP secrets) is storage-1's own, never the host's /etc/tgt.
    expect(readFileSync(path.join(STORAGE_DIR, 'etc-tgt/conf.d/mammatus.conf'), 'utf8')).toContain(iqn);
    const hostConf = '/etc/tgt/conf.d/mammatus.conf';
    if (existsSync(hostConf)) expect(readFileSync(hostConf, 'utf8')).not.toContain(v.chap.secret);

    // Not attached: served to nobody, so discovery shows this initiator nothing.
    const hidden = await runCommand('iscsi-ls', ['-i', initiator, `iscsi://${STORAGE_PORTAL}`]);
    expect(hidden.stdout).not.toContain(iqn);

    expect((await mammatus(['instance', 'register', 'lcvm', '--mac', '02:00:00:00:00:77', '--node', 'compute-1'])).code).toBe(0);
    const attached = await mammatus(['volume', 'attach', 'lcvol', '--instance', 'lcvm', '--initiator', initiator]);
    expect(attached.code, attached.stderr).toBe(0);
    // CHAP through libiscsi's environment, as the commands to try pass it (never on a command line).
    const inq = (secret?: string) =>
      runCommand(
        'iscsi-inq',
        ['-i', initiator, `iscsi://${STORAGE_PORTAL}/${iqn}/1`],
        secret === undefined ? {} : { LIBISCSI_CHAP_USERNAME: v.chap.user, LIBISCSI_CHAP_PASSWORD: secret },
        20_000,
      );
    // The storage node hears of the attachment from the controllers and admits the initiator.
    const login = await until(
      'a login with the CHAP',
      async () => {
        const r = await inq(v.chap.secret);
        return r.code === 0 ? r : undefined;
      },
      15_000,
    );
    expect(login.stdout).toContain('Peripheral Device Type:DIRECT_ACCESS');
    expect((await runCommand('iscsi-ls', ['-i', initiator, `iscsi://${STORAGE_PORTAL}`])).stdout).toContain(iqn);
    // A wrong secret, or no CHAP at all, is refused.
    expect((await inq(`${v.chap.secret}x`)).code).not.toBe(0);
    expect((await inq()).code).not.toBe(0);

    // The gateway's WAN leads to this host: a balancer made with the CLI answers here, from HAProxy
    // in the gateway's namespace. TCP to the controller's metadata service (its firewall lets the
    // gateway in), so any HTTP status is that service's, never HAProxy's.
    const lb = await mammatus(['lb', 'create', 'lcmeta', '--listen', '8080', '--mode', 'tcp', '--target', 'member:controller-1:8775']);
    expect(lb.code, lb.stderr).toBe(0);
    const url = `http://${WAN.gateway}:8080/latest/meta-data/`;
    const answered = await until(
      'the balancer on the WAN',
      async () => {
        const r = await runCommand('curl', ['-s', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', url]);
        return /^[1-5]\d\d$/.test(r.stdout) ? r.stdout : undefined;
      },
      20_000,
    );
    expect(answered).toMatch(/^[1-5]\d\d$/);
    // The gateway's status line counts it (HAProxy's state as of the previous ask: asked again until it shows).
    const status = await until(
      'the balancer in the status',
      async () => {
        const r = await runCommand(
          process.execPath,
          ['dist/mammatus.mjs', '--rpc-addr', '127.0.0.1:7375', 'status', '--tag', 'role=gateway'],
          env,
        );
        return /^ {2}gateway-1 gateway: 1 balancer, 1\/1 targets up/m.test(r.stdout) ? r.stdout : undefined;
      },
      15_000,
    );
    expect(status).toContain('1 balancer, 1/1 targets up');

    await stop();
    expect(out).toContain('Stopped.');
    expect(localLanLeftovers()).toEqual([]);
    expect((await runCommand('ip', ['link', 'show', 'mmc-wan'])).code).not.toBe(0);
    expect((await runCommand('pgrep', ['-f', '/run/mammatus-local-cluster/gateway/haproxy'])).stdout.trim()).toBe('');
    // Storage-1's mount namespace and private directories are gone, and its tgtd with them.
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(RUN_DIR);
    expect((await runCommand('pgrep', ['-f', `portal=${STORAGE_PORTAL}`])).stdout.trim()).toBe('');
  }, 300_000);
});
