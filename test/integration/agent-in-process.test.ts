/**
 * The agent in-process against real serf agents, with roles and handlers defined here: the role
 * framework driven by membership, handler faults (throw, hang, oversized answer), config reload and
 * event deduplication across an agent restart with a serf replay.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config/load.js';
import { createAgent, type Agent } from '../../agent/daemon.js';
import { buildRun } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { SerfClient } from '../../agent/serf/client.js';
import type { Role } from '../../roles/types.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually as poll } from '../../scripts/lib/wait.js';

const eventually = (check: () => void | Promise<void>, ms = 10_000) => poll(check, ms, 50);

const exec = promisify(execFile);
const skip = serfAvailable() ? undefined : 'the serf binary is not on PATH (apt-get install serf)';
if (skip) console.warn(`integration tests skipped: ${skip}`);

/** A role that writes the member list into `<dir>/hosts`, validated and probed with real commands. */
const hostsRole: Role<{ dir?: string; fail_health?: boolean; note?: string }> = {
  name: 'gateway',
  watches: ['member-join', 'member-leave', 'member-failed', 'member-reap'],
  render: (d) => [
    {
      path: path.join(d.config.dir!, 'hosts'),
      content: `# managed by mammatus role=gateway ${d.config.note ?? ''}\n${d.members
        .filter((m) => m.status === 'alive')
        .map((m) => `${m.addr} ${m.name}.mammatus`)
        .join('\n')}\n`,
    },
  ],
  validate: async (ctx) => void (await ctx.run('grep', ['-q', 'managed by mammatus', ctx.changed[0]])),
  health: async (ctx) => {
    const text = readFileSync(ctx.changed[0], 'utf8');
    if (text.includes('fail-health')) throw new Error('probe failed');
  },
  // Tags a role wants on its node (as the compute role's `iscsi`); `role` is the agent's own.
  facts: () => ({ tags: { probe: 'from-the-role', role: 'controller' } }),
};

describe.skipIf(Boolean(skip))('the agent in-process with real serf', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ip-'));
  const roleDir = path.join(tmp, 'etc');
  const configPath = path.join(tmp, 'agent.yaml');
  const seen: string[] = [];
  let a: SerfAgent;
  let b: SerfAgent;
  let agent: Agent;
  const logs: Record<string, unknown>[] = [];

  const build = async () => {
    const opts = { path: configPath, env: {} };
    const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
    return createAgent({
      loaded: await loadConfig(opts),
      reloadConfig: () => loadConfig(opts),
      log,
      run: buildRun(),
      files: buildFileOps(),
      roles: { gateway: hostsRole },
      version: '0.0.0-test',
      registerHandlers: (d) => {
        d.on('user:boom', () => {
          throw new Error('boom');
        });
        d.on('user:hang', () => new Promise(() => undefined));
        d.on('user:count', (ev) => void seen.push(`${ev.name}:${ev.payload.toString()}`));
        d.on('query:big', () => 'x'.repeat(2000));
        d.on('query:slow', () => new Promise(() => undefined));
      },
    });
  };

  beforeAll(async () => {
    a = await startSerfAgent({ name: 'a', dir: path.join(tmp, 'a'), tags: { role: 'gateway' } });
    b = await startSerfAgent({ name: 'b', dir: path.join(tmp, 'b') });
    writeFileSync(
      configPath,
      `state_dir: ${path.join(tmp, 'state')}\nserf: { rpc_addr: "${a.rpcAddr}" }\ndispatch: { handler_timeout: 300ms, query_timeout: 1s }\nwatch_config: false\nroles: { gateway: { dir: ${roleDir} } }\n`,
    );
    agent = await build();
    await agent.start();
  });
  afterAll(async () => {
    await agent?.stop();
    await a?.stop();
    await b?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  const hosts = () => readFileSync(path.join(roleDir, 'hosts'), 'utf8');

  it('applies its role at start and again when a member joins (a watched membership change)', async () => {
    await eventually(() => expect(hosts()).toContain('127.0.0.1 a.mammatus'));
    expect(hosts()).not.toContain('b.mammatus');
    const client = await SerfClient.connect({ addr: a.rpcAddr });
    await client.join([b.bindAddr]);
    client.close();
    await eventually(() => expect(hosts()).toContain('127.0.0.1 b.mammatus'));
    expect(agent.view.roleStatus().gateway?.state).toBe('ok');
  });

  it("publishes the tags a role wants on its node, never the agent's own", async () => {
    const client = await SerfClient.connect({ addr: a.rpcAddr });
    try {
      await eventually(async () => {
        const self = (await client.members()).find((m) => m.name === 'a');
        expect(self?.tags).toMatchObject({ probe: 'from-the-role', role: 'gateway' });
      });
    } finally {
      client.close();
    }
  });

  it('isolates a throwing and a hanging handler: later events are still handled', async () => {
    const client = await SerfClient.connect({ addr: b.rpcAddr });
    await client.event('boom');
    await client.event('hang');
    await client.event('count', Buffer.from('1'));
    client.close();
    await eventually(() => expect(seen).toContain('count:1'));
    expect(agent.dispatcher.stats.failed).toBeGreaterThanOrEqual(1);
    expect(agent.dispatcher.stats.timedOut).toBeGreaterThanOrEqual(1);
    expect(logs.some((l) => l.msg === 'handler failed' && l.handler === 'user:boom')).toBe(true);
  });

  it('answers with a clear error instead of an answer over serf’s size limit, or after the deadline', async () => {
    const big = JSON.parse((await exec('serf', ['query', `-rpc-addr=${b.rpcAddr}`, '-format=json', '-node', 'a', 'big'])).stdout) as {
      Responses: Record<string, string>;
    };
    expect(big.Responses.a).toMatch(/^\{"error":"answer too large: 2000 bytes > 981"\}$/);
    const slow = JSON.parse(
      (await exec('serf', ['query', `-rpc-addr=${b.rpcAddr}`, '-format=json', '-node', 'a', '-timeout', '1s', 'slow'])).stdout,
    ) as { Responses: Record<string, string> };
    expect(slow.Responses).toEqual({ a: '{"error":"timeout"}' });
  });

  it('rolls back when the health probe fails, keeping the last good files', async () => {
    const before = hosts();
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(`dir: ${roleDir}`, `dir: ${roleDir}, note: fail-health`));
    expect(await agent.reload()).toBe(true);
    expect(agent.view.roleStatus().gateway).toMatchObject({ state: 'error', error: 'health: probe failed' });
    expect(hosts()).toBe(before);
  });

  it('keeps the last good config when the file becomes invalid', async () => {
    const good = readFileSync(configPath, 'utf8');
    writeFileSync(configPath, 'serf: { rpc_addr: nowhere }\n');
    expect(await agent.reload()).toBe(false);
    expect(agent.config().serf.rpc_addr).toBe(a.rpcAddr);
    expect(logs.some((l) => l.msg === 'config reload failed; keeping the last good config')).toBe(true);
    writeFileSync(configPath, good.replace(', note: fail-health', ''));
    expect(await agent.reload()).toBe(true);
    expect(agent.view.roleStatus().gateway?.state).toBe('ok');
  });

  it('refuses a drop-in holding a secret that others can read, keeping the last good config, until it is chmod 600', async () => {
    const dropIn = path.join(tmp, 'agent.d', '50-secret.yaml');
    mkdirSync(path.dirname(dropIn), { recursive: true });
    writeFileSync(dropIn, `metadata: { proxy_secret: "${'5e'.repeat(32)}" }\nlog: { level: warn }\n`);
    chmodSync(dropIn, 0o644);
    const before = logs.length;
    expect(await agent.reload()).toBe(false);
    expect(agent.config().metadata).toEqual({});
    expect(agent.config().log.level).toBe('info');
    const failed = logs.slice(before).find((l) => l.msg === 'config reload failed; keeping the last good config');
    expect((failed?.err as { message?: string } | undefined)?.message).toBe(
      `${dropIn}: metadata.proxy_secret: is a secret, but ${dropIn} is readable by others (mode 0644); run chmod 600 ${dropIn}`,
    );
    expect(JSON.stringify(logs.slice(before))).not.toContain('5e'.repeat(32));
    // The agent goes on: it still answers, and its role is fine.
    expect(agent.view.roleStatus().gateway?.state).toBe('ok');
    chmodSync(dropIn, 0o600);
    expect(await agent.reload()).toBe(true);
    expect(agent.config().metadata).toEqual({ proxy_secret: '5e'.repeat(32) });
    rmSync(dropIn);
    expect(await agent.reload()).toBe(true);
  });

  it('skips user events replayed by serf after the agent restarted', async () => {
    const client = await SerfClient.connect({ addr: b.rpcAddr });
    for (const n of ['2', '3']) await client.event('count', Buffer.from(n));
    await eventually(() => expect(seen).toEqual(expect.arrayContaining(['count:2', 'count:3'])));
    const handledBefore = seen.length;
    await agent.stop();
    // Restart node a's serf without a snapshot and re-join with replay: serf re-delivers old events.
    await a.kill();
    a = await startSerfAgent({ ...a.spec, bindPort: a.bindPort, rpcPort: a.rpcPort });
    agent = await build();
    await agent.start();
    const ca = await SerfClient.connect({ addr: a.rpcAddr });
    await ca.join([b.bindAddr], true);
    ca.close();
    await eventually(() => expect(agent.dispatcher.stats.duplicates).toBeGreaterThanOrEqual(3));
    await client.event('count', Buffer.from('4'));
    client.close();
    await eventually(() => expect(seen).toContain('count:4'));
    expect(seen.length).toBe(handledBefore + 1);
  });
});
