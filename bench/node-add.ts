/**
 * `mammatus node add` over SSH to a fresh Debian 13 root, against doing the install by hand.
 *
 *   npx tsx bench/node-add.ts
 *
 * The bed of test/packaging/node-add.test.ts (scripts/lib/node-add-bed.ts): a controller on this
 * host (serf with gossip encryption and an RPC key, its agent, nats-server), the .deb, and two
 * fresh debootstrap chroots each with Debian's openssh-server on a loopback port. Root, debootstrap
 * and the Debian mirror (or a cached tree) needed.
 *
 * 1. node add (chroot A): `mammatus node add root@127.0.0.1 --role storage --deb FILE --json`, from
 *    nothing to `ok`; the CLI's own CPU time is taken with bash's `times` around it. Its wall time
 *    is split into SSH (step ssh), setup (credentials + configure), install, join (start step +
 *    until the node is an alive member) and first apply (the rest of the wait, until it answers
 *    `ok`). The remote agent's own part is its first log line → "agent ready" (which comes after its
 *    first apply), read from its log in the chroot.
 * 2. by hand (chroot B), the baseline: `scp -O` (no sftp-server in a minimal root) the same .deb, then `ssh root@… apt-get install -y
 *    ./mammatus-agent_….deb` (the same packages from the same mirror), with OpenSSH's client.
 *
 * node add runs first, so any cache warmed upstream of the mirror helps the baseline, not us.
 * Goals: the agent's own share (CLI CPU + remote agent start → first apply) < 10 % of node add's
 * total; node add / by hand reported (no goal: node add also admits, configures, starts and waits).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { baseTarball, chrootSkipReason } from '../scripts/lib/chroot.js';
import { PACKAGE_VERSION, run, sshRoot, startControllerBed } from '../scripts/lib/node-add-bed.js';
import { freePort } from '../scripts/lib/ports.js';
import { BUNDLE, Cleanup, emitJson, ensureBundle, Goals, machine, printMachine, round, runMain, tempDir } from './lib.js';

const SUITE = 'trixie';

interface AddJson {
  node: string;
  steps: Array<{ name: string; ms: number; changed: boolean; phases?: { joined_ms?: number } }>;
  total_ms: number;
}

/** CPU seconds of the children of a bash that ran `times` (its second line: user and system). */
function childCpuMs(timesOutput: string): number {
  const lines = timesOutput.trim().split('\n');
  const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(lines.at(-1) ?? '');
  if (!m) return NaN;
  return (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000;
}

/** ms from the agent's first log line to its "agent ready" line (pino's `time`, epoch ms). */
function agentStartToReady(log: string): number {
  const lines = log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { time?: number; msg?: string });
  const ready = lines.find((l) => l.msg === 'agent ready');
  return ready?.time !== undefined && lines[0]?.time !== undefined ? ready.time - lines[0].time : NaN;
}

async function main(): Promise<number> {
  const skip = await chrootSkipReason(SUITE);
  if (skip) {
    console.log(`node-add benchmark skipped: ${skip}`);
    return 0;
  }
  ensureBundle();
  const m = machine();
  printMachine(m);
  const cleanup = new Cleanup();
  const goals = new Goals();
  try {
    const work = tempDir('node-add', cleanup);
    const tarball = await baseTarball(SUITE, { onBuild: (msg) => console.log(msg) });
    const bed = await startControllerBed(work);
    cleanup.add(() => bed.stop());
    const a = await sshRoot(tarball, bed.sshPub, path.join(work, 'logs-a'));
    cleanup.add(() => a.dispose());
    const b = await sshRoot(tarball, bed.sshPub, path.join(work, 'logs-b'));
    cleanup.add(() => b.dispose());
    const [sshdA, sshdB] = [await a.startSshd(), await b.startSshd()];
    const knownHosts = path.join(work, 'operator', 'known_hosts');

    // 1. node add, with the CLI's CPU time from bash's `times`.
    const argv = [
      process.execPath,
      BUNDLE,
      '--rpc-addr',
      bed.serf.rpcAddr,
      '--rpc-auth',
      bed.rpcAuth,
      '--credentials',
      bed.credentials,
      'node',
      'add',
      'root@127.0.0.1',
      '--port',
      String(sshdA.port),
      '--identity',
      bed.sshKey,
      '--known-hosts',
      knownHosts,
      '--accept-new',
      '--name',
      'bench-1',
      '--role',
      'storage',
      '--deb',
      bed.deb,
      '--bind',
      `127.0.0.2:${await freePort()}`,
      '--rpc',
      `127.0.0.1:${await freePort()}`,
      '--nats',
      bed.natsUrl,
      '--json',
    ];
    const env = { PATH: process.env.PATH, HOME: path.join(work, 'operator') };
    const t0 = performance.now();
    const added = await run('bash', ['-c', '"$@"; rc=$?; times >&2; exit $rc', 'bash', ...argv], env);
    const addWall = performance.now() - t0;
    if (added.code !== 0) throw new Error(`node add failed:\n${added.stderr}`);
    console.log(added.stderr.trim());
    const out = JSON.parse(added.stdout) as AddJson;
    const ms = (name: string) => out.steps.find((s) => s.name === name)?.ms ?? NaN;
    const joined = out.steps.find((s) => s.name === 'wait')?.phases?.joined_ms ?? 0;
    const split = {
      ssh: ms('ssh'),
      setup: ms('credentials') + ms('configure'),
      install: ms('install'),
      join: ms('start') + joined,
      first_apply: ms('wait') - joined,
    };
    const cliCpu = childCpuMs(added.stderr);
    // The cluster can see the node's `mammatus` tag a moment before its agent logs "agent ready"
    // (its `serf tags` call returns after the broadcast): give the line up to 5 s to appear.
    const agentLog = () => readFileSync(a.chroot.path('/var/log/mammatus/agent.log'), 'utf8');
    for (let i = 0; i < 50 && Number.isNaN(agentStartToReady(agentLog())); i++) await new Promise((r) => setTimeout(r, 100));
    const agentReady = agentStartToReady(agentLog());
    const ownShare = ((cliCpu + agentReady) / out.total_ms) * 100;

    // 2. by hand: scp + ssh apt-get install ./deb, with OpenSSH's client.
    const ssh = [
      '-i',
      bed.sshKey,
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'StrictHostKeyChecking=accept-new',
      '-o',
      'BatchMode=yes',
    ];
    const deb = path.basename(bed.deb);
    const h0 = performance.now();
    const scp = await run('scp', ['-O', ...ssh, '-P', String(sshdB.port), bed.deb, `root@127.0.0.1:/root/${deb}`], env);
    const h1 = performance.now();
    const inst = await run(
      'ssh',
      [...ssh, '-p', String(sshdB.port), 'root@127.0.0.1', `cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y ./${deb}`],
      env,
    );
    const h2 = performance.now();
    if (scp.code !== 0 || inst.code !== 0) throw new Error(`by hand failed: ${scp.stderr}\n${inst.stderr}`);
    const byHand = h2 - h0;
    const installed = (await b.chroot.run('dpkg-query', ['-W', '-f=${Version}', 'mammatus-agent'])).stdout;

    const s = (x: number) => `${(x / 1000).toFixed(1)} s`;
    console.log(
      `\nnode add: ${s(out.total_ms)} (process ${s(addWall)}): ssh ${s(split.ssh)}, setup ${s(split.setup)}, install ${s(split.install)}, ` +
        `join ${s(split.join)}, first apply ${s(split.first_apply)}`,
    );
    console.log(
      `agent's own: CLI CPU ${s(cliCpu)} + remote agent start → ready ${s(agentReady)} = ${ownShare.toFixed(1)} % of node add's total`,
    );
    console.log(`by hand: ${s(byHand)} (scp ${s(h1 - h0)}, ssh apt-get install ${s(h2 - h1)}; mammatus-agent ${installed} installed)`);
    const ratio = out.total_ms / byHand;
    console.log(`node add / by hand: ${ratio.toFixed(2)}`);
    goals.check("agent's own share of node add", ownShare < 10, round(ownShare, 1), '< 10 %');

    emitJson({
      bench: 'node-add',
      machine: m,
      version: PACKAGE_VERSION,
      node_add_ms: out.total_ms,
      node_add_process_ms: round(addWall, 0),
      steps: out.steps,
      split_ms: split,
      cli_cpu_ms: round(cliCpu, 0),
      remote_agent_start_to_ready_ms: agentReady,
      own_share_percent: round(ownShare, 2),
      by_hand_ms: round(byHand, 0),
      by_hand_scp_ms: round(h1 - h0, 0),
      by_hand_install_ms: round(h2 - h1, 0),
      ratio_node_add_by_hand: round(ratio, 3),
      goals: goals.results,
    });
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('node-add', main);
