/**
 * A loopback cluster for integration tests: real serf agents, each with a real mammatus agent
 * process (the bundle), in a temp directory. Everything is stopped by PID in `stop()`.
 */
import type { NodeCredentials } from '../../core/trust.js';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SerfClient } from '../../agent/serf/client.js';
import { BUNDLE, bundleBuilt, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';

const exec = promisify(execFile);

/** Why integration tests cannot run here, or undefined when they can. */
export function skipReason(): string | undefined {
  if (!serfAvailable()) return 'the serf binary is not on PATH (apt-get install serf)';
  if (!bundleBuilt()) return 'dist/mammatus.mjs is missing (npm run build)';
  return undefined;
}

/** One node of the test cluster. */
export interface TestNode {
  readonly name: string;
  serf: SerfAgent;
  agent?: MammatusAgent;
  readonly dir: string;
}

/** Node definitions: name, tags, whether to run a mammatus agent, and an optional RPC auth key. */
export interface NodeDef {
  readonly name: string;
  readonly tags?: Record<string, string>;
  readonly agent?: boolean;
  readonly rpcAuth?: string;
  readonly extraYaml?: string;
  /** The node's credentials (core/trust.ts), written to its state directory before its agent starts. */
  readonly credentials?: NodeCredentials;
}

/** A running test cluster. */
export interface TestCluster {
  readonly root: string;
  readonly nodes: TestNode[];
  node(name: string): TestNode;
  /** Runs the real `serf` CLI against a node; resolves with stdout. */
  serf(node: string, args: string[]): Promise<string>;
  /** Runs the bundled `mammatus` CLI against a node. */
  mammatus(node: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Waits until `check` passes (polling), or throws its last error after `timeoutMs`. */
  eventually<T>(check: () => Promise<T> | T, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

/** Starts the cluster: serf agents joined into one, then the mammatus agents, ready. */
export async function startCluster(defs: readonly NodeDef[]): Promise<TestCluster> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-it-'));
  const nodes: TestNode[] = [];
  const cluster: TestCluster = {
    root,
    nodes,
    node: (name) => nodes.find((n) => n.name === name)!,
    async serf(name, args) {
      const n = cluster.node(name);
      const [cmd, ...rest] = args;
      const auth = n.serf.spec.rpcAuth ? [`-rpc-auth=${n.serf.spec.rpcAuth}`] : [];
      const { stdout } = await exec('serf', [cmd, `-rpc-addr=${n.serf.rpcAddr}`, ...auth, ...rest], { timeout: 30_000 });
      return stdout;
    },
    async mammatus(name, args) {
      const n = cluster.node(name);
      const auth = n.serf.spec.rpcAuth ? ['--rpc-auth', n.serf.spec.rpcAuth] : [];
      try {
        const { stdout, stderr } = await exec(process.execPath, [BUNDLE, '--rpc-addr', n.serf.rpcAddr, ...auth, ...args], {
          timeout: 30_000,
        });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
      }
    },
    async eventually(check, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          return await check();
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async stop() {
      await Promise.allSettled(nodes.flatMap((n) => (n.agent ? [n.agent.stop()] : [])));
      await Promise.allSettled(nodes.map((n) => n.serf.stop()));
      if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    for (const d of defs) {
      const dir = path.join(root, d.name);
      const serf = await startSerfAgent({ name: d.name, dir, tags: d.tags, tagsFile: true, snapshot: true, rpcAuth: d.rpcAuth });
      nodes.push({ name: d.name, serf, dir });
    }
    const first = await SerfClient.connect({ addr: nodes[0].serf.rpcAddr, authKey: defs[0].rpcAuth });
    try {
      if (nodes.length > 1) await first.join(nodes.slice(1).map((n) => n.serf.bindAddr));
    } finally {
      first.close();
    }
    await Promise.all(
      nodes.map(async (n, i) => {
        const d = defs[i];
        if (d.agent === false) return;
        n.agent = await startMammatusAgent({
          dir: path.join(n.dir, 'agent'),
          rpcAddr: n.serf.rpcAddr,
          rpcAuth: d.rpcAuth,
          extraYaml: d.extraYaml,
          credentials: d.credentials,
        });
      }),
    );
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/**
 * The `roles.controller` lines of an agent config for a test controller: its nats-server on free
 * loopback ports, its files under `dir`, the host's firewall untouched. Returns the lines and the
 * NATS client URL.
 */
export async function testControllerYaml(dir: string): Promise<{ lines: string[]; natsUrl: string; monitorUrl: string }> {
  const { freePort } = await import('../../scripts/lib/ports.js');
  const [client, cluster, monitor] = [await freePort(), await freePort(), await freePort()];
  const at = (name: string) => JSON.stringify(path.join(dir, name));
  return {
    natsUrl: `nats://127.0.0.1:${client}`,
    monitorUrl: `http://127.0.0.1:${monitor}`,
    lines: [
      'roles:',
      '  controller:',
      `    nats: { listen: "127.0.0.1:${client}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${at('nats')} }`,
      `    paths: { nats_conf: ${at('nats.conf')}, members: ${at('members')}, roster: ${at('roster.json')}, firewall: ${at('firewall.rules')} }`,
      '    firewall: { enabled: false }',
    ],
  };
}
