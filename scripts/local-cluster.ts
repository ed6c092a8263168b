/**
 * The local cluster: one node per role on this machine's loopback, each a real `serf agent` with
 * its own ports plus a mammatus agent (the bundle) using examples/cluster/<role>.yaml. Prints
 * `mammatus status` and commands to try, then runs until Ctrl-C, when it stops everything by PID.
 * `--once` tears down right after printing (used by the tests to keep this script honest).
 */
import { execFileSync } from 'node:child_process';
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

interface Node {
  name: string;
  role: string;
  config: string;
  rpcPort: number;
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

async function teardown(): Promise<void> {
  await Promise.allSettled(nodes.map((n) => n.agent?.stop()));
  await Promise.allSettled(nodes.map((n) => n.serf?.stop()));
}

async function main(): Promise<void> {
  rmSync(work, { recursive: true, force: true });
  const key = execFileSync('serf', ['keygen'], { encoding: 'utf8' }).trim();
  console.log(`Starting ${nodes.length} serf agents (gossip encrypted) and mammatus agents in ${work} ...`);
  for (const [i, n] of nodes.entries()) {
    n.serf = await startSerfAgent({
      name: n.name,
      dir: path.join(work, n.name, 'serf'),
      tags: { role: n.role },
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
  const first = await SerfClient.connect({ addr: nodes[0]!.serf!.rpcAddr });
  await first.join(nodes.slice(1).map((n) => n.serf!.bindAddr));
  await Promise.all(
    nodes.map(async (n) => {
      n.agent = await startMammatusAgent({ dir: path.join(work, n.name, 'agent'), rpcAddr: n.serf!.rpcAddr, configPath: n.config, env: agentEnv });
    }),
  );
  // Ready once every member carries the `mammatus` tag its agent sets.
  for (let i = 0; i < 100; i++) {
    const members = await first.members();
    if (members.filter((m) => m.tags.mammatus).length === nodes.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  first.close();

  const a = nodes[0]!.serf!.rpcAddr;
  const c = nodes[1]!.serf!.rpcAddr;
  const cli = `node ${path.relative(process.cwd(), BUNDLE) || BUNDLE}`;
  console.log(`\n$ ${cli} --rpc-addr ${a} status`);
  try {
    console.log(execFileSync(process.execPath, [BUNDLE, '--rpc-addr', a, 'status'], { encoding: 'utf8' }));
  } catch (err) {
    console.log((err as { stdout?: string }).stdout ?? String(err));
  }
  console.log(`Try, in another terminal (each node's serf RPC: ${nodes.map((n) => `${n.name} ${n.serf!.rpcAddr}`).join(', ')}):
  serf members -rpc-addr=${a}
  serf query -rpc-addr=${a} mammatus.ping
  serf query -rpc-addr=${a} -tag role=compute mammatus.status
  serf event -rpc-addr=${c} mammatus.reconcile gateway
  serf tags -rpc-addr=${c} -set role=compute,storage      # the compute node takes on storage too
  ${cli} --rpc-addr ${a} status --json
  ${cli} --rpc-addr ${c} query mammatus.ping --tag role=storage
Logs: ${work}/<node>/agent/agent.log and ${work}/<node>/serf/serf.log.`);
  if (once) return;
  console.log('\nPress Ctrl-C to stop the cluster.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
    for (const n of nodes) n.agent!.process.once('exit', (code) => console.error(`mammatus agent of ${n.name} exited (${code}); see its log`));
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
