/**
 * The local cluster: one node per role on this machine, each a real `serf agent` with its own ports
 * plus a mammatus agent (the bundle) using examples/cluster/<role>.yaml. Prints `mammatus status`
 * and commands to try, then runs until Ctrl-C, when it stops everything by PID.
 *
 * As root the nodes share a LAN (scripts/lib/local-lan.ts): the gateway runs in a network namespace
 * of its own and really serves DHCP, DNS and the metadata proxy there, and, when `lxd` is installed,
 * the compute node gets an LXD daemon of its own in another namespace with an instance image
 * imported, so `mammatus instance launch` runs a container end to end; when tgt is installed, the
 * storage node runs in a network and mount namespace of its own with a tgtd of its own
 * (scripts/lib/local-storage.ts) and serves the volumes `mammatus volume create` records. Per-node drop-ins
 * (scripts/lib/local-root.ts) put the controller's NATS and metadata service on the LAN and share
 * a fresh metadata secret. Without root the gateway node runs without its role, the compute role
 * stays unconfigured and the storage node serves no volume.
 *
 * Flags: `--once` tears down right after printing (the tests use it); `--no-image` never builds the
 * instance image (a cached one is still imported); `--no-demo` launches no container.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { SerfClient } from '../agent/serf/client.js';
import { CN_LAN, LAN, NETNS, buildLocalLan, removeLocalLan } from './lib/local-lan.js';
import {
  CONTROLLER_PORTS,
  LXD_BASE,
  RUN_DIR,
  imageAlias,
  instanceImage,
  nodeConfig,
  rootDropIns,
  storageRegistry,
  writeDropIn,
  writeMetadataSecret,
} from './lib/local-root.js';
import { CREDENTIALS_FILE } from '../core/trust.js';
import { removeFirewall } from '../roles/controller/firewall.js';
import { buildRun } from '../core/exec.js';
import { lxdInstalled, mustRun, startLxdDaemon, stopLeftoverLxd, type LxdDaemon } from './lib/lxd-node.js';
import { printStatus, runDemo, suggestions, type DemoCluster } from './lib/local-demo.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from './lib/mammatus-agent.js';
import { startSerfAgent, type SerfAgent } from './lib/serf-agent.js';
import {
  STORAGE_PORTAL,
  removeStorageNs,
  setUpStorageNs,
  startStorageTgtd,
  storageMissing,
  storagePrefix,
  storageReady,
  storagePrefixLine,
} from './lib/local-storage.js';
import { errorMessage } from '../core/errors.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const ROLES = ['gateway', 'compute', 'storage', 'controller'] as const;
const once = process.argv.includes('--once');
const noImage = process.argv.includes('--no-image');
const noDemo = process.argv.includes('--no-demo');
const work = path.join(repo, '.cluster');
/** The operator key of the run: signs events and `mammatus.leases` asks in the commands to try. */
const operatorKey = path.join(work, 'operator_ed25519');
// The gateway role changes a machine's firewall and runs DHCP, LXD needs root too: both only run
// as root, and then in network namespaces of their own, so the host's own network is never touched.
const asRoot = process.getuid?.() === 0;
const CONTROLLER_DIR = '/tmp/mammatus-local-cluster/controller';

interface Node {
  name: string;
  role: string;
  example: string;
  rpcPort: number;
  netns?: string;
  /** Its drop-in (as root), trust included. */
  dropIn?: object;
  serf?: SerfAgent;
  agent?: MammatusAgent;
}

const nodes: Node[] = ROLES.map((role) => {
  const example = path.join(repo, 'examples/cluster', `${role}.yaml`);
  const rpcAddr = (parse(readFileSync(example, 'utf8')) as { serf: { rpc_addr: string } }).serf.rpc_addr;
  return { name: `${role}-1`, role, example, rpcPort: Number(rpcAddr.split(':')[1]) };
});

// Each agent takes its serf address from its example config: variables a user exported for the
// CLI (SERF_RPC_ADDR, MAMMATUS_RPC_ADDR, …) must not point all four at one serf.
const agentEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SERF_|MAMMATUS_)/.test(k)));

let lxd: LxdDaemon | undefined;
let image: { file: string; alias: string } | undefined;
/** As root with tgt: storage-1's namespaces exist (`ns`) and its tgtd runs (`tgtd`); else why not. */
const storage: { ns: boolean; tgtd?: ChildProcess; why?: string } = { ns: false };
let stopping = false;
// Ctrl-C while starting (an image build takes minutes) stops at the next step, then tears down.
let interrupted = false;
let wake: (() => void) | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    interrupted = true;
    wake?.();
  });
}
function step(): void {
  if (interrupted) throw new Error('interrupted while starting');
}

// The serf and mammatus agents this run started, for the next run should this one be killed: a
// killed node process leaves its children running, holding the cluster's ports.
const PIDS = path.join(work, 'pids');

/** Records a started process as `[pid, its /proc cmdline]`: the cmdline tells a reused PID apart. */
function recordPid(pid: number | undefined): void {
  try {
    appendFileSync(PIDS, `${JSON.stringify([pid, readFileSync(`/proc/${pid}/cmdline`, 'utf8')])}\n`);
  } catch {
    /* already gone: nothing to leave behind */
  }
}

/**
 * Stops, by PID, what a killed previous run left running, when each is still the process recorded:
 * SIGTERM first, so an agent stops what its roles run (nats-server, dnsmasq), SIGKILL after 10 s.
 */
async function stopRecordedLeftovers(): Promise<void> {
  const lines = existsSync(PIDS) ? readFileSync(PIDS, 'utf8').split('\n').filter(Boolean) : [];
  const alive = (pid: number, cmdline: string) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === cmdline;
    } catch {
      return false;
    }
  };
  const left = lines.map((l) => JSON.parse(l) as [number, string]).filter(([pid, cmd]) => alive(pid, cmd));
  for (const [pid] of left) process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && left.some(([pid, cmd]) => alive(pid, cmd)); i++) await new Promise((r) => setTimeout(r, 100));
  for (const [pid, cmd] of left) if (alive(pid, cmd)) process.kill(pid, 'SIGKILL');
  rmSync(PIDS, { force: true });
}

/** Everything root-only a previous run may have left (it crashed, or was killed): ours by name. */
async function removeRootLeftovers(): Promise<void> {
  await stopLeftoverLxd(LXD_BASE);
  // The controller's firewall chain: an agent leaves it when it stops (so a controller stays
  // protected while its agent restarts); the cluster is gone, so is the chain.
  await removeFirewall(buildRun()).catch(() => undefined);
  removeLocalLan();
  removeStorageNs();
  rmSync(RUN_DIR, { recursive: true, force: true });
  // LXD's idmapped files need root to remove: this runs as root.
  rmSync(LXD_BASE, { recursive: true, force: true });
}

async function teardown(): Promise<void> {
  stopping = true;
  await Promise.allSettled(nodes.flatMap((n) => (n.agent ? [n.agent.stop()] : [])));
  await Promise.allSettled(nodes.flatMap((n) => (n.serf ? [n.serf.stop()] : [])));
  await stopTgtd();
  rmSync(PIDS, { force: true });
  // The controller's store: otherwise a run as root would leave it unwritable for one without.
  rmSync(path.dirname(CONTROLLER_DIR), { recursive: true, force: true });
  if (!asRoot) return;
  await lxd?.stop().catch((err: Error) => console.error(`stopping LXD: ${err.message}`));
  await removeRootLeftovers();
}

/** As root: the LAN, the secret, the compute node's LXD with the image; returns each role's drop-in. */
async function setUpRoot(): Promise<Record<string, object>> {
  await removeRootLeftovers();
  const withLxd = lxdInstalled();
  if (!withLxd) console.log('lxd is not installed (apt-get install lxd debootstrap): the compute node runs without LXD.');
  const tarball = withLxd ? await instanceImage(noImage) : undefined;
  step();
  storage.why = storageMissing();
  buildLocalLan({ compute: withLxd, storage: !storage.why });
  const secretFile = writeMetadataSecret();
  if (!storage.why) await startStorage();
  if (withLxd) {
    console.log(`Starting LXD for compute-1 in netns ${NETNS.cn} (LXD_DIR=${LXD_BASE}/lxd) ...`);
    // An LXD that cannot run here (no usable cgroups, say) should not keep the other roles from running.
    lxd = await startLxdDaemon({ ns: NETNS.cn, dir: LXD_BASE, logDir: path.join(work, 'compute-1', 'lxd') }).catch((err: Error) => {
      console.log(`LXD did not start, the compute node runs without it: ${err.message}`);
      return undefined;
    });
    step();
    if (tarball && lxd) {
      const alias = imageAlias(tarball);
      // A bad tarball is no reason to stop: the cluster runs, and says how to import another.
      await mustRun(process.execPath, [BUNDLE, 'image', 'import', tarball, '--alias', alias, '--lxd-socket', lxd.socket], {}, 300_000).then(
        () => {
          image = { file: tarball, alias };
          console.log(`Imported ${tarball} into compute-1's LXD as ${alias}.`);
        },
        (err: Error) => console.log(`Importing the image failed: ${err.message}`),
      );
    }
  }
  return rootDropIns({ secretFile, lxdSocket: lxd?.socket, storage: Boolean(storage.tgtd) });
}

/** Storage-1's mount namespace and tgtd; a tgtd that does not start leaves the node serving nothing. */
async function startStorage(): Promise<void> {
  const dir = path.join(work, 'storage-1');
  mkdirSync(path.join(dir, 'volumes'), { recursive: true });
  try {
    setUpStorageNs(path.join(dir, 'volumes'));
  } catch (err) {
    storage.why = `its mount namespace could not be made: ${errorMessage(err)}`;
    return;
  }
  storage.ns = true;
  console.log(`Starting tgtd for storage-1 in netns ${NETNS.st} (iSCSI on ${STORAGE_PORTAL}) ...`);
  storage.tgtd = await startStorageTgtd(path.join(dir, 'tgtd.log')).catch((err: Error) => {
    storage.why = `its tgtd did not start: ${err.message}`;
    return undefined;
  });
  recordPid(storage.tgtd?.pid);
}

/** SIGKILL: tgtd ignores SIGTERM while it has targets (docs/storage.md); its data is in the files. */
async function stopTgtd(): Promise<void> {
  const t = storage.tgtd;
  if (!t || t.exitCode !== null || t.signalCode !== null) return;
  const gone = new Promise((resolve) => t.once('exit', resolve));
  t.kill('SIGKILL');
  await gone;
}

/** Where a node's agent keeps its credentials (its `state_dir`, examples/cluster/<role>.yaml). */
function credentialsOf(node: string): string {
  return path.join(work, node, 'state', CREDENTIALS_FILE);
}

/** Runs the CLI (the bundle) as the controller; throws with its output when it fails. */
async function mammatus(args: string[]): Promise<void> {
  // One more try when NATS did not answer in the CLI's 5 s: on a loaded machine (2 cores shared), an
  // admit has timed out right after the controller's nats-server reloaded (SIGHUP) for a change.
  for (let i = 0; ; i++) {
    try {
      return void (await mustRun(process.execPath, [BUNDLE, ...args], {}, 30_000));
    } catch (err) {
      if (i > 0 || !/cannot reach NATS/.test(errorMessage(err))) throw err;
      console.log(`(${args.slice(0, 3).join(' ')}: NATS did not answer in time; trying once more)`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

async function main(): Promise<void> {
  await stopRecordedLeftovers();
  rmSync(work, { recursive: true, force: true });
  // The controller's NATS store (examples/cluster/controller.yaml): each run starts a fresh cluster.
  rmSync(CONTROLLER_DIR, { recursive: true, force: true });
  const key = execFileSync('serf', ['keygen'], { encoding: 'utf8' }).trim();
  // Serf RPC with an auth key, as a controller requires: the agents, the demo and the commands to
  // try (serf and mammatus both read SERF_RPC_AUTH) use it; so do the controller's credentials.
  const rpcAuth = randomBytes(16).toString('hex');
  process.env.SERF_RPC_AUTH = rpcAuth;
  process.env.MAMMATUS_CREDENTIALS = credentialsOf('controller-1');
  const dropIns = asRoot ? await setUpRoot() : {};
  // The cluster's operator for this run (docs/security.md): a key made here, without a passphrase.
  mkdirSync(work, { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator@local-cluster', '-f', operatorKey]);
  if (!asRoot) {
    console.log('Not root, so this cluster cannot:');
    console.log(
      '  - run the gateway role: DHCP, DNS, TFTP, its firewall and the metadata proxy need root (they get a network namespace of their own);',
    );
    console.log('  - give compute-1 an LXD: containers need root, so `instance launch` has nowhere to run;');
    console.log('  - serve volumes on storage-1: its tgtd and the iSCSI port need root (and a network namespace of their own).');
    console.log('The other nodes run on 127.0.0.1. For all of it: sudo bash scripts/cluster.sh');
  }
  if (asRoot && storage.why) console.log(`storage-1 serves no volume: ${storage.why}.`);
  console.log(`Starting ${nodes.length} serf agents (gossip encrypted, RPC with a key) and mammatus agents in ${work} ...`);
  for (const [i, n] of nodes.entries()) {
    step();
    const isGateway = n.role === 'gateway';
    const isStorage = n.role === 'storage' && storage.ns;
    n.netns = asRoot && isGateway ? NETNS.gw : isStorage ? NETNS.st : undefined;
    n.serf = await startSerfAgent({
      name: n.name,
      dir: path.join(work, n.name, 'serf'),
      tags: { role: isGateway && !asRoot ? '' : n.role },
      netns: n.netns,
      bindIp: asRoot ? (isGateway ? LAN.gateway : isStorage ? LAN.storage : LAN.host) : '127.0.0.1',
      tagsFile: true,
      snapshot: true,
      encryptKey: key,
      rpcAuth,
      rpcPort: n.rpcPort,
      // Gossip ports next to the RPC ports: 7946 + 1 + i, out of the way of a system serf on 7946.
      bindPort: 7947 + i,
    }).catch((err: Error) => {
      throw new Error(
        `${err.message}\n(is something else using 127.0.0.1:${n.rpcPort} or :${7947 + i}? stop it, or change examples/cluster/${n.role}.yaml)`,
      );
    });
    recordPid(n.serf.process.pid);
  }
  // The compute node is the entry point: its RPC is on the host's loopback in every mode.
  const entry = nodes.find((n) => n.role === 'compute')!;
  const first = await SerfClient.connect({ addr: entry.serf!.rpcAddr, authKey: rpcAuth });
  await first.join(nodes.filter((n) => n !== entry).map((n) => n.serf!.bindAddr));
  const startAgent = async (n: Node) => {
    // Every node trusts the run's operator key: signed events and `mammatus.leases` asks.
    const trust = { trust: { operators_file: `${operatorKey}.pub` } };
    n.dropIn = { ...dropIns[n.role], ...trust };
    const configPath = nodeConfig(path.join(work, n.name), n.example, n.dropIn);
    n.agent = await startMammatusAgent({
      dir: path.join(work, n.name, 'agent'),
      rpcAddr: n.serf!.rpcAddr,
      configPath,
      env: { ...agentEnv, SERF_RPC_AUTH: rpcAuth },
      netns: n.netns,
      // Storage-1's agent also shares its tgtd's mount namespace (the control socket, /etc/tgt).
      ...(n.netns === NETNS.st ? { prefix: storagePrefix() } : {}),
    });
    recordPid(n.agent.pid);
  };
  // Trust: the controller admits itself (a new cluster authority), starts, then admits the others
  // with the very commands an operator runs (docs/security.md); each agent starts with its credentials.
  const controller = nodes.find((n) => n.role === 'controller')!;
  console.log('Admitting the nodes: the controller first (a new cluster authority), then the others ...');
  await mammatus(['node', 'admit', controller.name, '--role', 'controller']);
  await startAgent(controller);
  step();
  const nats = `nats://${asRoot ? LAN.host : '127.0.0.1'}:${CONTROLLER_PORTS.nats}`;
  for (const n of nodes.filter((x) => x !== controller)) {
    // compute-1 may also take storage: the commands to try add it at run time with a tag.
    const roles = n.role === 'compute' ? 'compute,storage' : n.role;
    await mammatus(['node', 'admit', n.name, '--role', roles, '--out', credentialsOf(n.name), '--nats', nats]);
  }
  await Promise.all(nodes.filter((n) => n !== controller).map(startAgent));
  // Ready once every member carries the `mammatus` tag its agent sets.
  for (let i = 0; i < 100; i++) {
    const members = await first.members();
    if (members.filter((m) => m.tags.mammatus).length === nodes.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  first.close();
  step();
  const st = nodes.find((n) => n.role === 'storage')!;
  // Storage-1's registry now that its trust tag is out (why: storageRegistry); its agent reloads.
  if (storage.tgtd) writeDropIn(path.join(work, st.name), { ...st.dropIn, ...storageRegistry() });
  const notReady = storage.tgtd && (await storageReady(entry.serf!.rpcAddr));
  if (notReady) console.log(`storage-1 is not ready to serve volumes yet: ${notReady}`);
  // Another node's RPC on the host's loopback: storage-1's, or the controller's when storage-1 has its netns.
  const other = nodes.find((n) => n.role === 'storage' && !n.netns) ?? controller;
  const demo: DemoCluster = {
    rpc: entry.serf!.rpcAddr,
    otherRpc: other.serf!.rpcAddr,
    asRoot,
    operatorKey,
    ...(storage.tgtd ? { storage: { portal: STORAGE_PORTAL, prefix: storagePrefixLine() } } : {}),
    ...(lxd ? { lxd: { lxdDir: lxd.lxdDir, ...(image ? { alias: image.alias } : {}) } } : {}),
  };
  printStatus(demo);
  const demoRan = !noDemo && (await runDemo(demo));
  step();
  printTry(demo, demoRan);
  if (once) return;
  console.log('\nPress Ctrl-C to stop the cluster.');
  for (const n of nodes) {
    n.agent!.process.once('exit', (code) => {
      if (!stopping) console.error(`mammatus agent of ${n.name} exited (${code}); see its log`);
    });
  }
  if (!interrupted) await new Promise<void>((resolve) => (wake = resolve));
}

/** The commands to try, the logs, and what this run could not do. */
function printTry(demo: DemoCluster, demoRan: boolean): void {
  const rpcList = nodes.map((n) => `${n.name} ${n.serf!.rpcAddr}${n.netns ? ` (in netns ${n.netns})` : ''}`).join(', ');
  console.log(`\nTry, in another terminal (each node's serf RPC: ${rpcList}):`);
  // The serf RPC key and the controller's credentials, for serf and mammatus alike.
  console.log(
    `  export SERF_RPC_AUTH=${process.env.SERF_RPC_AUTH} MAMMATUS_CREDENTIALS=${path.relative(process.cwd(), credentialsOf('controller-1'))}`,
  );
  for (const l of suggestions(demo, demoRan)) console.log(`  ${l}`);
  console.log(`Logs: ${work}/<node>/agent/agent.log and ${work}/<node>/serf/serf.log${lxd ? `; LXD: ${lxd.logFile}` : ''}.`);
  if (asRoot && lxd && !image)
    console.log(
      `compute-1's LXD has no image: import one with node dist/mammatus.mjs image import FILE --alias ALIAS --lxd-socket ${lxd.socket}`,
    );
  if (asRoot)
    console.log(
      `The LAN: ${LAN.host} (this host, mmc-lan), ${LAN.gateway} (gateway, netns ${NETNS.gw})${storage.ns ? `, ${LAN.storage} (storage-1, netns ${NETNS.st})` : ''}${lxd ? `, compute-1's containers on ${CN_LAN} (netns ${NETNS.cn})` : ''}.`,
    );
}

main()
  .catch((err: unknown) => {
    console.error(`local cluster failed: ${errorMessage(err)}`);
    process.exitCode = interrupted ? 130 : 1;
  })
  .finally(async () => {
    console.log('\nStopping the cluster ...');
    await teardown();
    console.log('Stopped.');
  });
