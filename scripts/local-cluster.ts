/**
 * The local cluster: one node per role on this machine's loopback, each a real `serf agent` with
 * its own ports plus a mammatus agent (the bundle) using examples/cluster/<role>.yaml. Prints
 * `mammatus status` and commands to try, then runs until Ctrl-C, when it stops everything by PID.
 * `--once` tears down right after printing (used by the tests to keep this script honest).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { SerfClient } from '../agent/serf/client.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from './lib/mammatus-agent.js';
import { startSerfAgent, type SerfAgent } from './lib/serf-agent.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const ROLES = ['gateway', 'compute', 'storage', 'controller'] as const;
const once = process.argv.includes('--once');
const work = path.join(repo, '.cluster');
// The gateway role changes a machine's firewall and runs DHCP: it only runs as root, and then in a
// network namespace of its own, so the host's own network is never touched (see gateway.yaml).
const asRoot = process.getuid?.() === 0;
const GW_NS = 'mammatus-lc-gw';
const HOST_LAN_IP = '10.213.0.2';
const GW_LAN_IP = '10.213.0.1';
const RUN_DIR = '/run/mammatus-local-cluster';
const CONTROLLER_DIR = '/tmp/mammatus-local-cluster/controller';

interface Node {
  name: string;
  role: string;
  config: string;
  rpcPort: number;
  netns?: string;
  serf?: SerfAgent;
  agent?: MammatusAgent;
}

const nodes: Node[] = ROLES.map((role) => {
  const config = path.join(repo, 'examples/cluster', `${role}.yaml`);
  const rpcAddr = (parse(readFileSync(config, 'utf8')) as { serf: { rpc_addr: string } }).serf.rpc_addr;
  return { name: `${role}-1`, role, config, rpcPort: Number(rpcAddr.split(':')[1]) };
});

// Each agent takes its serf address from its example config: variables a user exported for the
// CLI (SERF_RPC_ADDR, MAMMATUS_RPC_ADDR, …) must not point all four at one serf.
const agentEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SERF_|MAMMATUS_)/.test(k)));

/** The gateway's namespace: LAN port gw-lan (a veth whose host end carries HOST_LAN_IP), WAN gw-wan. */
function buildGatewayNamespace(): void {
  removeGatewayNamespace();
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  ip('netns', 'add', GW_NS);
  ip('link', 'add', 'mmc-lan', 'type', 'veth', 'peer', 'name', 'gw-lan', 'netns', GW_NS);
  ip('addr', 'add', `${HOST_LAN_IP}/24`, 'dev', 'mmc-lan');
  ip('link', 'set', 'mmc-lan', 'up');
  ip('-n', GW_NS, 'link', 'set', 'lo', 'up');
  ip('-n', GW_NS, 'addr', 'add', `${GW_LAN_IP}/24`, 'dev', 'gw-lan');
  ip('-n', GW_NS, 'link', 'set', 'gw-lan', 'up');
  // A veth with both ends inside: an up WAN port without an outside (not every kernel has `dummy`).
  ip('-n', GW_NS, 'link', 'add', 'gw-wan', 'type', 'veth', 'peer', 'name', 'wan-end');
  ip('-n', GW_NS, 'addr', 'add', '192.0.2.2/24', 'dev', 'gw-wan');
  ip('-n', GW_NS, 'link', 'set', 'wan-end', 'up');
  ip('-n', GW_NS, 'link', 'set', 'gw-wan', 'up');
}

/** Deleting the namespace deletes the veth pair with it; the rendered files go too. */
function removeGatewayNamespace(): void {
  spawnSync('ip', ['netns', 'del', GW_NS], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'del', 'mmc-lan'], { stdio: 'ignore' });
  rmSync(RUN_DIR, { recursive: true, force: true });
}

let stopping = false;

async function teardown(): Promise<void> {
  stopping = true;
  await Promise.allSettled(nodes.map((n) => n.agent?.stop()));
  await Promise.allSettled(nodes.map((n) => n.serf?.stop()));
  if (asRoot) removeGatewayNamespace();
}

async function main(): Promise<void> {
  rmSync(work, { recursive: true, force: true });
  // The controller's NATS store (examples/cluster/controller.yaml): each run starts a fresh cluster.
  rmSync(CONTROLLER_DIR, { recursive: true, force: true });
  const key = execFileSync('serf', ['keygen'], { encoding: 'utf8' }).trim();
  console.log(`Starting ${nodes.length} serf agents (gossip encrypted) and mammatus agents in ${work} ...`);
  if (asRoot) buildGatewayNamespace();
  else console.log('Not root: the gateway node runs without its role (it needs root, and then gets a network namespace).');
  for (const [i, n] of nodes.entries()) {
    const isGateway = n.role === 'gateway';
    n.netns = asRoot && isGateway ? GW_NS : undefined;
    n.serf = await startSerfAgent({
      name: n.name,
      dir: path.join(work, n.name, 'serf'),
      tags: { role: isGateway && !asRoot ? '' : n.role },
      netns: n.netns,
      bindIp: asRoot ? (isGateway ? GW_LAN_IP : HOST_LAN_IP) : '127.0.0.1',
      tagsFile: true,
      snapshot: true,
      encryptKey: key,
      rpcPort: n.rpcPort,
      // Gossip ports next to the RPC ports: 7946 + 1 + i, out of the way of a system serf on 7946.
      bindPort: 7947 + i,
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n(is something else using 127.0.0.1:${n.rpcPort} or :${7947 + i}? stop it, or change examples/cluster/${n.role}.yaml)`);
    });
  }
  // The compute node is the entry point: its RPC is on the host's loopback in every mode.
  const entry = nodes.find((n) => n.role === 'compute')!;
  const first = await SerfClient.connect({ addr: entry.serf!.rpcAddr });
  await first.join(nodes.filter((n) => n !== entry).map((n) => n.serf!.bindAddr));
  await Promise.all(
    nodes.map(async (n) => {
      n.agent = await startMammatusAgent({ dir: path.join(work, n.name, 'agent'), rpcAddr: n.serf!.rpcAddr, configPath: n.config, env: agentEnv, netns: n.netns });
    }),
  );
  // Ready once every member carries the `mammatus` tag its agent sets.
  for (let i = 0; i < 100; i++) {
    const members = await first.members();
    if (members.filter((m) => m.tags.mammatus).length === nodes.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  first.close();

  const a = entry.serf!.rpcAddr;
  const c = nodes.find((n) => n.role === 'storage')!.serf!.rpcAddr;
  const cli = `node ${path.relative(process.cwd(), BUNDLE) || BUNDLE}`;
  console.log(`\n$ ${cli} --rpc-addr ${a} status`);
  try {
    console.log(execFileSync(process.execPath, [BUNDLE, '--rpc-addr', a, 'status'], { encoding: 'utf8' }));
  } catch (err) {
    console.log((err as { stdout?: string }).stdout ?? String(err));
  }
  const rpcList = nodes.map((n) => `${n.name} ${n.serf!.rpcAddr}${n.netns ? ` (in netns ${n.netns})` : ''}`).join(', ');
  console.log(`Try, in another terminal (each node's serf RPC: ${rpcList}):
  serf members -rpc-addr=${a}
  serf query -rpc-addr=${a} mammatus.ping
  serf query -rpc-addr=${a} -tag role=compute mammatus.status
  serf event -rpc-addr=${c} mammatus.reconcile compute
  serf tags -rpc-addr=${a} -set role=compute,storage      # the compute node takes on storage too
  ${cli} --rpc-addr ${a} status --json
  ${cli} --rpc-addr ${c} query mammatus.ping --tag role=storage
  ${cli} instance register web-1 --mac 02:00:00:00:00:21 --ip 127.0.0.1 --nats nats://127.0.0.1:4232
  curl http://127.0.0.1:8775/latest/meta-data/local-hostname   # the controller's metadata service${asRoot ? `
  dig @${GW_LAN_IP} compute-1.mammatus +short                # the gateway's DNS knows every member
  serf query -rpc-addr=${a} -tag role=gateway mammatus.leases` : ''}
Logs: ${work}/<node>/agent/agent.log and ${work}/<node>/serf/serf.log.`);
  if (once) return;
  console.log('\nPress Ctrl-C to stop the cluster.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
    for (const n of nodes) {
      n.agent!.process.once('exit', (code) => {
        if (!stopping) console.error(`mammatus agent of ${n.name} exited (${code}); see its log`);
      });
    }
  });
}

main()
  .catch((err: unknown) => {
    console.error(`local cluster failed: ${(err as Error).message}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    console.log('\nStopping the cluster ...');
    await teardown();
    console.log('Stopped.');
  });
