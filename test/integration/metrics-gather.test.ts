/**
 * How metrics travel (issue 22), with real serf agents, a real controller (its agent and
 * nats-server with nkey users) and a second admitted node: every agent serves its exposition on its
 * local listener; the controller gathers a member's through NATS at `/members/<name>/metrics`; and,
 * as an attacker would try it, a node's own credentials can neither ask another node for its
 * metrics nor listen on another node's subject, strangers get nothing, and bad requests get a
 * clear error while the agent carries on.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../core/nats.js';
import { readCredentials, type NodeCredentials } from '../../core/trust.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually } from '../../scripts/lib/wait.js';
import { skipReason, testControllerYaml } from './harness.js';

const exec = promisify(execFile);
const skip = skipReason() ?? (natsServerAvailable() ? undefined : 'nats-server is missing');
if (skip) console.warn(`metrics gather test skipped: ${skip}`);

describe.skipIf(Boolean(skip))('metrics: local listener, gathered through NATS, refused to others', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-metrics-'));
  const rpcAuth = 'metrics-test-rpc-key';
  const serfs: SerfAgent[] = [];
  const agents: MammatusAgent[] = [];
  const opened: NatsConnection[] = [];
  let ctl: MammatusAgent;
  let node: MammatusAgent;
  let natsUrl = '';
  let creds: NodeCredentials;

  const get = (url: string, init?: RequestInit) => fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = async (url: string) => {
    const r = await get(url);
    return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
  };

  beforeAll(async () => {
    const gossipKey = (await exec('serf', ['keygen'])).stdout.trim();
    const serf = async (name: string, tags: Record<string, string>) => {
      const s = await startSerfAgent({ name, dir: path.join(root, name, 'serf'), tags, rpcAuth, encryptKey: gossipKey });
      serfs.push(s);
      return s;
    };
    const ctlSerf = await serf('ctl-1', { role: 'controller' });
    const dir = path.join(root, 'ctl-1');
    const cli = (...args: string[]) =>
      exec(
        process.execPath,
        [
          BUNDLE,
          '--rpc-addr',
          ctlSerf.rpcAddr,
          '--rpc-auth',
          rpcAuth,
          '--credentials',
          path.join(dir, 'agent', 'state', 'credentials.json'),
          ...args,
        ],
        {
          timeout: 30_000,
        },
      );
    await cli('node', 'admit', 'ctl-1', '--role', 'controller');
    const controller = await testControllerYaml(dir);
    natsUrl = controller.natsUrl;
    ctl = await startMammatusAgent({
      dir: path.join(dir, 'agent'),
      rpcAddr: ctlSerf.rpcAddr,
      rpcAuth,
      extraYaml: [
        'watch_config: false',
        ...controller.lines,
        `metadata: { listen: "127.0.0.1:${await freePort()}", proxy_secret: "${'cd'.repeat(32)}" }`,
      ].join('\n'),
    });
    agents.push(ctl);
    const file = path.join(root, 'n1.json');
    await cli('node', 'admit', 'n1', '--role', 'gateway', '--out', file, '--nats', natsUrl);
    creds = (await readCredentials(file))!;
    // Admitted as a gateway, tagged with no role: an agent that runs nothing but answers for its metrics.
    const nodeSerf = await serf('n1', {});
    node = await startMammatusAgent({
      dir: path.join(root, 'n1', 'agent'),
      rpcAddr: nodeSerf.rpcAddr,
      rpcAuth,
      credentials: creds,
      extraYaml: `watch_config: false\nroles: { gateway: { registry: { nats: ["${natsUrl}"] } } }`,
    });
    agents.push(node);
    await exec('serf', ['join', `-rpc-addr=${nodeSerf.rpcAddr}`, `-rpc-auth=${rpcAuth}`, ctlSerf.bindAddr]);
  }, 90_000);

  afterAll(async () => {
    await Promise.allSettled(opened.map((nc) => nc.close()));
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled(serfs.map((s) => s.stop()));
    rmSync(root, { recursive: true, force: true });
  });

  it("serves the agent's own exposition on its local listener", async () => {
    const r = await eventually(async () => {
      const got = await text(`${ctl.metricsUrl}/metrics`);
      expect(got.body).toMatch(/^mammatus_role_state\{role="controller",state="ok"\} 1$/m);
      return got;
    }, 30_000);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.body).toMatch(/^mammatus_agent_info\{version="[^"]+",roles="controller"\} 1$/m);
    expect(r.body).toMatch(/^mammatus_serf_member\{member="ctl-1",status="alive",roles="controller"\} 1$/m);
    expect(r.body).toMatch(/^mammatus_filesystem_avail_bytes\{path="\/"\} \d+/m);
    expect(r.body).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(r.body).toMatch(/^mammatus_role_applies_total\{role="controller",outcome="ok"\} [1-9]/m);
  });

  it("gathers a member's metrics through NATS on the controller, and its own directly", async () => {
    const r = await eventually(async () => {
      const got = await text(`${ctl.metricsUrl}/members/n1/metrics`);
      expect(got.status).toBe(200);
      return got;
    }, 30_000);
    expect(r.body).toMatch(/^mammatus_agent_info\{version="[^"]+",roles=""\} 1$/m);
    expect(r.body).toMatch(/^mammatus_serf_member\{member="n1",status="alive",roles=""\} 1$/m);
    expect((await text(`${ctl.metricsUrl}/members/ctl-1/metrics`)).body).toMatch(/roles="controller"\} 1$/m);
    // Only a controller gathers: the member's own listener refuses the path.
    expect((await text(`${node.metricsUrl}/members/ctl-1/metrics`)).status).toBe(404);
  });

  it("refuses a node's credentials asking another node, or listening on another node's subject", async () => {
    const nc = await connectNats(natsUrl, { name: 'attacker', timeoutMs: 5000, credentials: creds });
    opened.push(nc);
    await expect(nc.request('mammatus.metrics.ctl-1', '', { timeout: 2000 })).rejects.toThrow(/Permissions Violation|timeout/i);
    await expect(nc.request('mammatus.metrics.n1', '', { timeout: 2000 })).rejects.toThrow(/Permissions Violation|timeout/i);
    const sub = nc.subscribe('mammatus.metrics.ctl-1');
    await expect(
      (async () => {
        for await (const m of sub) return m;
      })(),
    ).rejects.toThrow(/Permissions Violation/);
    // The node's own answers keep flowing to the controller meanwhile.
    expect((await text(`${ctl.metricsUrl}/members/n1/metrics`)).status).toBe(200);
  });

  it('answers bad requests with a clear error and carries on', async () => {
    expect((await text(`${ctl.metricsUrl}/members/nobody/metrics`)).status).toBe(503);
    expect((await text(`${ctl.metricsUrl}/members/${encodeURIComponent('../x y')}/metrics`)).status).toBe(400);
    expect((await text(`${ctl.metricsUrl}/elsewhere`)).status).toBe(404);
    expect((await get(`${ctl.metricsUrl}/metrics`, { method: 'POST', body: 'x' })).status).toBe(405);
    expect((await get(`${ctl.metricsUrl}/metrics?${'x'.repeat(20_000)}`)).status).toBe(431);
    expect((await text(`${ctl.metricsUrl}/metrics`)).status).toBe(200);
  });

  it('reports a member that stopped as unreachable (503), so Prometheus marks it down', async () => {
    await node.stop();
    const r = await eventually(async () => {
      const got = await text(`${ctl.metricsUrl}/members/n1/metrics`);
      expect(got.status).toBe(503);
      return got;
    }, 20_000);
    expect(r.body).toMatch(/no metrics from n1/);
  });
});
