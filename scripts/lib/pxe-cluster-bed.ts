/**
 * A real cluster in network namespaces for issue 19's end-to-end test (test/integration/pxe-cluster.test.ts):
 * the bed of netns-bed.ts (bridge in `sw`, gateway `gw` 10.88.0.1, controller `ctl` 10.88.0.10), in
 * `ctl` serf (encrypted, bound to 10.88.0.10:7946) and a controller agent from the bundle (its
 * nats-server on 10.88.0.10:4222, the registry, the metadata service on :8775 with `metadata.hosts`,
 * the hosts admission service); in `gw` serf and a gateway agent (DHCP with PXE, TFTP, the boot
 * server on :8777 with the boot image and the cluster's signed apt repository, the metadata proxy).
 * The controller admits itself and the gateway as `node admit` does on a new cluster. The test
 * process reaches the controller's NATS through a unix-socket bridge (its loopback is not the
 * namespace's). Everything is stopped by PID; the bed's destroy removes the namespaces.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readCredentials, type NodeCredentials } from '../../core/trust.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from './mammatus-agent.js';
import type { GatewayBed } from './netns-bed.js';
import { buildDeb } from './node-add-bed.js';
import { ensureSystemUser } from './proc.js';
import { startSerfAgent, type SerfAgent } from './serf-agent.js';
import { until } from './wait.js';

const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Addresses of the bed's cluster. */
export const CTL_IP = '10.88.0.10';
export const GW_IP = '10.88.0.1';
export const BOOT_URL = `http://${GW_IP}:8777`;
const RPC_AUTH = 'pxe-cluster-rpc-key';
const PROXY_SECRET = 'cd'.repeat(32);

/** The running cluster. */
export interface PxeCluster {
  readonly ctlSerf: SerfAgent;
  readonly gwSerf: SerfAgent;
  readonly controller: MammatusAgent;
  readonly gateway: MammatusAgent;
  /** The controller's credentials (with the authority's seed). */
  readonly ctlCredentials: NodeCredentials;
  /** nats:// URL on the test's loopback, bridged to the controller's nats-server. */
  readonly natsUrl: string;
  /** The gateway's dnsmasq lease file. */
  readonly leases: string;
  /** The repository key's fingerprint, as `metadata.hosts.apt_key_fingerprint` got it. */
  readonly fingerprint: string;
  /** The members as the controller's Serf sees them (`serf members -format=json`); none on an error. */
  members(): Promise<Array<{ name: string; status: string; tags: Record<string, string> }>>;
  /** The bundled CLI as root on the controller (inside `ctl`); never rejects. */
  cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** Runs a command; never rejects. */
async function run(file: string, args: readonly string[], timeout = 60_000) {
  return exec(file, [...args], { timeout, maxBuffer: 16 << 20 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number | string; stdout?: string; stderr?: string; message: string }) => ({
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? e.message,
    }),
  );
}

/** Builds the .deb and its signed flat repository into `dir`; returns the repo dir and the key's fingerprint. */
export async function buildAptRepo(dir: string): Promise<{ repo: string; fingerprint: string; gnupg: string }> {
  const deb = await buildDeb(path.join(dir, 'dist'));
  const repo = path.join(dir, 'apt');
  const gnupg = path.join(dir, 'gnupg');
  await exec('bash', [path.join(ROOT, 'scripts/repo-build.sh'), '--out', repo, '--gnupg-home', gnupg, deb], { timeout: 300_000 });
  const shown = await exec('gpg', ['--show-keys', '--with-colons', path.join(repo, 'mammatus-archive-keyring.gpg')]);
  const fingerprint = /^fpr:+([0-9A-F]{40,64}):/m.exec(shown.stdout)?.[1];
  if (!fingerprint) throw new Error(`no fingerprint in the repository key: ${shown.stdout}`);
  return { repo, fingerprint, gnupg };
}

/** Starts the cluster on `bed`; `image` is build-boot-image.sh's directory, `work` a 0755 directory. */
export async function startPxeCluster(bed: GatewayBed, work: string, image: string): Promise<PxeCluster> {
  const stops: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    stops.length = 0;
  };
  try {
    // dnsmasq (nobody) and the boot server (mammatus) read below `work`.
    chmodSync(work, 0o755);
    ensureSystemUser('mammatus');
    const { repo, fingerprint, gnupg } = await buildAptRepo(work);
    stops.push(() => stopGpgAgent(gnupg));
    chmodSync(repo, 0o755);
    // Router adverts with a prefix save iPXE ≈13 s of waiting for IPv6 (docs/baremetal.md).
    await exec('ip', ['-n', bed.ns.gw, 'addr', 'add', 'fd00:88::1/64', 'dev', bed.ifaces.gwLan, 'nodad']);

    const gossipKey = (await exec('serf', ['keygen'])).stdout.trim();
    const d = (...p: string[]) => path.join(work, ...p);
    const ctlSerf = await startSerfAgent({
      name: 'ctl-1',
      dir: d('ctl', 'serf'),
      tags: { role: 'controller' },
      rpcAuth: RPC_AUTH,
      encryptKey: gossipKey,
      bindIp: CTL_IP,
      bindPort: 7946,
      netns: bed.ns.ctl,
    });
    stops.push(() => ctlSerf.stop());
    const ctlCredsFile = d('ctl', 'agent', 'state', 'credentials.json');
    const cli = (args: readonly string[]) =>
      run('ip', [
        'netns',
        'exec',
        bed.ns.ctl,
        process.execPath,
        BUNDLE,
        '--rpc-addr',
        ctlSerf.rpcAddr,
        '--rpc-auth',
        RPC_AUTH,
        '--credentials',
        ctlCredsFile,
        ...args,
      ]);
    const admitted = await cli(['node', 'admit', 'ctl-1', '--role', 'controller']);
    if (admitted.code !== 0) throw new Error(`node admit ctl-1: ${admitted.stderr}`);
    const ctlCredentials = (await readCredentials(ctlCredsFile))!;
    const q = (...p: string[]) => JSON.stringify(d(...p));
    const controller = await startMammatusAgent({
      dir: d('ctl', 'agent'),
      rpcAddr: ctlSerf.rpcAddr,
      rpcAuth: RPC_AUTH,
      netns: bed.ns.ctl,
      extraYaml: [
        'watch_config: false',
        'roles:',
        '  controller:',
        `    nats: { listen: "${CTL_IP}:4222", cluster_listen: "${CTL_IP}:6222", monitor_listen: "127.0.0.1:8222", store_dir: ${q('ctl', 'nats')}, binary: nats-server }`,
        `    paths: { nats_conf: ${q('ctl', 'nats.conf')}, members: ${q('ctl', 'members')}, roster: ${q('ctl', 'roster.json')}, firewall: ${q('ctl', 'firewall.rules')} }`,
        '    firewall: { enabled: false }',
        // The CA's files under the bed, never the host's /var/lib/mammatus/ca (no `ca init` here).
        `    ca: { paths: { root_cert: ${q('ctl', 'ca', 'root.crt')}, intermediate_cert: ${q('ctl', 'ca', 'intermediate.crt')}, intermediate_key: ${q('ctl', 'ca', 'intermediate.key')}, data_dir: ${q('ctl', 'ca', 'data')} } }`,
        `metadata: { listen: "${CTL_IP}:8775", proxy_secret: "${PROXY_SECRET}", hosts: { apt_url: "${BOOT_URL}/apt/", apt_key_fingerprint: "${fingerprint}" } }`,
      ].join('\n'),
    });
    stops.push(() => controller.stop());

    const gwSerf = await startSerfAgent({
      name: 'gw-1',
      dir: d('gw', 'serf'),
      tags: { role: 'gateway' },
      rpcAuth: RPC_AUTH,
      encryptKey: gossipKey,
      bindIp: GW_IP,
      bindPort: 7946,
      netns: bed.ns.gw,
    });
    stops.push(() => gwSerf.stop());
    const joined = await run('ip', [
      'netns',
      'exec',
      bed.ns.gw,
      'serf',
      'join',
      `-rpc-addr=${gwSerf.rpcAddr}`,
      `-rpc-auth=${RPC_AUTH}`,
      `${CTL_IP}:7946`,
    ]);
    if (joined.code !== 0) throw new Error(`serf join from the gateway: ${joined.stderr}`);
    const gwState = d('gw', 'agent', 'state');
    mkdirSync(gwState, { recursive: true });
    const gwAdmit = await cli(['node', 'admit', 'gw-1', '--role', 'gateway', '--out', path.join(gwState, 'credentials.json')]);
    if (gwAdmit.code !== 0) throw new Error(`node admit gw-1: ${gwAdmit.stderr}`);
    const secretFile = d('gw', 'proxy-secret');
    writeFileSync(secretFile, `${PROXY_SECRET}\n`, { mode: 0o600 });
    mkdirSync(d('gw', 'tftp'), { recursive: true });
    const leases = d('gw', 'leases', 'dnsmasq.leases');
    const gp = (f: string) => d('gw', f);
    const gateway = await startMammatusAgent({
      dir: d('gw', 'agent'),
      rpcAddr: gwSerf.rpcAddr,
      rpcAuth: RPC_AUTH,
      netns: bed.ns.gw,
      extraYaml: [
        'watch_config: false',
        'roles:',
        '  gateway:',
        `    lan: { interface: ${bed.ifaces.gwLan}, address: ${GW_IP}/24 }`,
        `    wan: { interface: ${bed.ifaces.gwWan} }`,
        '    upstream_dns: [203.0.113.1]',
        `    tftp: { root: ${gp('tftp')} }`,
        `    boot: { image_dir: ${image}, apt_dir: ${repo} }`,
        `    metadata: { secret_file: ${secretFile}, upstreams: ["http://${CTL_IP}:8775"] }`,
        `    paths: { dnsmasq_conf: ${gp('dnsmasq.conf')}, hosts_dir: ${gp('hosts.d')}, leases: ${leases}, iptables: ${gp('iptables.rules')}, hop_limit: ${gp('hop-limit.rules')}, sysctl: ${gp('sysctl.conf')}, lease_hook: ${gp('lease-hook')}, metadata_proxy: ${gp('metadata-proxy.yaml')}, dhcp_hosts_dir: ${gp('dhcp-hosts.d')}, members: ${gp('members')}, left_out: ${gp('left-out')}, boot_server: ${gp('boot-server.yaml')}, boot_stub: ${gp('boot.ipxe')} }`,
      ].join('\n'),
    });
    stops.push(() => gateway.stop());
    await until('the gateway role', () => gateway.logLines().some((l) => l.msg === 'boot-http ready'), 60_000);

    // The test's way to the controller's NATS: a forwarder in `ctl` on a unix socket, bridged here.
    const sock = d('ctl', 'nats.sock');
    const forward = `const net=require('node:net');net.createServer((c)=>{const u=net.connect(4222,'${CTL_IP}');c.pipe(u).pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());}).listen(process.argv[1]);`;
    const fwd = bed.spawn('ctl', [process.execPath, '-e', forward, sock]);
    stops.push(() => bed.kill(fwd));
    await until('the NATS bridge', () => existsSync(sock), 10_000);
    const bridge = net.createServer((c) => {
      const u = net.connect(sock);
      c.pipe(u).pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => bridge.listen(0, '127.0.0.1', r));
    stops.push(() => new Promise<void>((r) => bridge.close(() => r())));
    return {
      ctlSerf,
      gwSerf,
      controller,
      gateway,
      ctlCredentials,
      natsUrl: `nats://127.0.0.1:${(bridge.address() as net.AddressInfo).port}`,
      leases,
      fingerprint,
      cli,
      members: async () => {
        const r = await run(
          'ip',
          ['netns', 'exec', bed.ns.ctl, 'serf', 'members', `-rpc-addr=${ctlSerf.rpcAddr}`, `-rpc-auth=${RPC_AUTH}`, '-format=json'],
          10_000,
        );
        try {
          return (JSON.parse(r.stdout) as { members: Array<{ name: string; status: string; tags: Record<string, string> }> }).members;
        } catch {
          return [];
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** repo-build.sh's gpg started a gpg-agent for its GNUPGHOME: stop that one by its PID. */
async function stopGpgAgent(gnupg: string): Promise<void> {
  if (!existsSync(gnupg)) return;
  const r = await run('gpg-connect-agent', ['--homedir', gnupg, '--no-autostart', 'getinfo pid', '/bye']);
  const pid = Number(/^D (\d+)$/m.exec(r.stdout)?.[1]);
  if (pid > 0) process.kill(pid, 'SIGTERM');
}

/** The lines of a file, or none when it does not exist yet. */
export function fileLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}
