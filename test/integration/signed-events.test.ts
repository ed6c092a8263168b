/**
 * Signed cluster commands end to end, with real serf agents and two agents in-process that trust
 * one operator key (made by the real ssh-keygen): `mammatus event` signs with the operator's key
 * file or ssh-agent and reports every agent's verdict; an event signed by a stranger fails the
 * command; unsigned `serf event`s and replays are refused and logged; a signed query's unsigned ask
 * is answered only with the refusal, a signed one with the answer.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../agent/cli/program.js';
import { loadConfig } from '../../agent/config/load.js';
import { createAgent, type Agent } from '../../agent/daemon.js';
import { SerfClient } from '../../agent/serf/client.js';
import { buildRun } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { keySigner, parseSshKey } from '../../core/sshsig.js';
import { sealEvent } from '../../core/signed-event.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually } from '../../scripts/lib/wait.js';

const exec = promisify(execFile);
const hasKeygen = spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error === undefined;
const skip = !serfAvailable()
  ? 'the serf binary is not on PATH (apt-get install serf)'
  : !hasKeygen
    ? 'ssh-keygen is missing (apt-get install openssh-client)'
    : undefined;
if (skip) console.warn(`signed events tests skipped: ${skip}`);

type Log = Record<string, unknown> & { msg: string };

describe.skipIf(Boolean(skip))('signed events and queries with real serf agents', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-signed-'));
  const serfs: SerfAgent[] = [];
  const agents: Agent[] = [];
  const logs: Log[][] = [[], []];
  const handled: string[] = [];
  let sshAgent: ReturnType<typeof spawn> | undefined;

  const keygen = (name: string, comment: string) => {
    const file = path.join(tmp, name);
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
    return { file, pub: readFileSync(`${file}.pub`, 'utf8').trim() };
  };
  const alice = keygen('alice', 'alice@laptop');
  const mallory = keygen('mallory', 'mallory@elsewhere');
  const home = path.join(tmp, 'home'); // no ~/.ssh keys: only what a test names

  /** Runs the CLI against serf `a`; returns exit code, stdout and stderr. */
  const cli = async (args: string[], env: NodeJS.ProcessEnv = { HOME: home }) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['--rpc-addr', serfs[0].rpcAddr, ...args], { out: (l) => out.push(l), err: (l) => err.push(l) }, env);
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  /** Builds and starts the agent of serf `i` (its state dir survives a restart). */
  const startAgent = async (i: number): Promise<Agent> => {
    const configPath = path.join(tmp, `agent-${i}.yaml`);
    writeFileSync(
      configPath,
      `state_dir: ${path.join(tmp, `state-${i}`)}\nserf: { rpc_addr: "${serfs[i].rpcAddr}" }\nwatch_config: false\ntrust: { operators: ["${alice.pub}"] }\n`,
    );
    const opts = { path: configPath, env: {} };
    const agent = createAgent({
      loaded: await loadConfig(opts),
      reloadConfig: () => loadConfig(opts),
      log: pino({ level: 'debug' }, { write: (s: string) => void logs[i].push(JSON.parse(s) as Log) }),
      run: buildRun(),
      files: buildFileOps(),
      roles: {},
      version: '0.0.0-test',
      registerHandlers: (d) => {
        d.on('user:mammatus.test.change', (ev, ctx) => void handled.push(`${i}:${ev.payload.toString()}:${ctx.signer}`));
        if (i === 0) d.on('query:mammatus.leases', (q, ctx) => ({ leases: [], asked: q.payload.toString(), by: ctx.signer }));
      },
    });
    await agent.start();
    return agent;
  };

  beforeAll(async () => {
    mkdirSync(home);
    for (const name of ['a', 'b']) serfs.push(await startSerfAgent({ name, dir: path.join(tmp, name) }));
    const client = await SerfClient.connect({ addr: serfs[0].rpcAddr });
    await client.join([serfs[1].bindAddr]);
    client.close();
    for (const i of [0, 1]) agents.push(await startAgent(i));
    await eventually(async () => expect((await cli(['query', 'mammatus.ping', '--json'])).out).toMatch(/"b": "pong"/), 10_000, 100);
  }, 60_000);

  afterAll(async () => {
    sshAgent?.kill();
    for (const a of agents) await a.stop();
    for (const s of serfs) await s.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('`mammatus event --identity` signs; both agents accept, the handlers see the payload and the operator', async () => {
    const r = await cli(['event', 'mammatus.test.change', 'v1', '--identity', alice.file]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/Accepted by 2 agent\(s\) as operator alice@laptop; refused by 0/);
    await eventually(() => expect(handled.sort()).toEqual(['0:v1:alice@laptop', '1:v1:alice@laptop']));
  });

  it('signs with the key a running ssh-agent holds (SSH_AUTH_SOCK), before any key file', async () => {
    const sock = path.join(tmp, 'agent.sock');
    sshAgent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    await eventually(() => expect(spawnSync('ssh-add', [alice.file], { env: { SSH_AUTH_SOCK: sock } }).status).toBe(0), 5000, 100);
    const r = await cli(['event', 'mammatus.test.change', 'v2'], { HOME: home, SSH_AUTH_SOCK: sock });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/Accepted by 2 agent\(s\) as operator alice@laptop/);
  });

  it('exits 1 when every agent refused: a key that is not an operator key', async () => {
    const r = await cli(['event', 'mammatus.test.change', 'evil', '--identity', mallory.file]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/Refused by 'a': signed by a key that is not an operator key/);
    expect(r.err).toMatch(/Refused by 'b': .*not an operator key/);
    expect(r.err).toMatch(/error: no agent accepted mammatus.test.change/);
    expect(handled.some((h) => h.includes('evil'))).toBe(false);
  });

  it('exits 2 with what to do when there is no operator key to sign with', async () => {
    const r = await cli(['event', 'mammatus.test.change', 'x']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/must be signed by an operator: no operator key: load an ed25519 key into ssh-agent/);
  });

  it('refuses unsigned `serf event`s and replays of a signed one, logging the reason; reconcile stays open', async () => {
    await exec('serf', ['event', `-rpc-addr=${serfs[1].rpcAddr}`, 'mammatus.test.change', 'unsigned']);
    const sealed = await sealEvent(
      keySigner(parseSshKey(readFileSync(alice.file))),
      'mammatus.test.change',
      Buffer.from('once'),
      Date.now(),
    );
    const client = await SerfClient.connect({ addr: serfs[1].rpcAddr });
    await client.event('mammatus.test.change', sealed);
    await client.event('mammatus.test.change', sealed); // the replay: a new Serf event, the same signature
    client.close();
    const refusals = (i: number) => logs[i].filter((l) => l.msg === 'signed event refused').map((l) => l.reason);
    for (const i of [0, 1]) {
      await eventually(() =>
        expect(refusals(i)).toEqual(
          expect.arrayContaining(['unsigned or malformed envelope (mammatus-sig-v1 expected)', 'replayed signature']),
        ),
      );
    }
    expect(handled.filter((h) => h.includes(':once:'))).toHaveLength(2); // once per agent
    expect(handled.some((h) => h.includes('unsigned'))).toBe(false);
    // A restart forgets nothing: the signature's nonce was saved (state_dir/signatures.json).
    await agents[1].stop();
    agents[1] = await startAgent(1);
    const again = await SerfClient.connect({ addr: serfs[0].rpcAddr });
    await again.event('mammatus.test.change', sealed);
    again.close();
    await eventually(() => expect(refusals(1).filter((r) => r === 'replayed signature')).toHaveLength(2));
    expect(handled.filter((h) => h.includes(':once:'))).toHaveLength(2);
    const open = await cli(['event', 'mammatus.reconcile']);
    expect(open.code).toBe(0);
    expect(open.out).not.toMatch(/Accepted by/);
  });

  it('answers a signed ask of mammatus.leases, and only the refusal to an unsigned one (serf query)', async () => {
    const { stdout } = await exec('serf', [
      'query',
      `-rpc-addr=${serfs[1].rpcAddr}`,
      '-format=json',
      '-timeout=1s',
      'mammatus.leases',
      '10.0.0.9',
    ]);
    expect((JSON.parse(stdout) as { Responses: Record<string, string> }).Responses).toEqual({
      a: '{"error":"refused: unsigned or malformed envelope (mammatus-sig-v1 expected)"}',
    });
    const r = await cli(['query', 'mammatus.leases', '10.0.0.9', '--identity', alice.file, '--json', '--timeout', '1s']);
    expect(r.code, r.err).toBe(0);
    const answers = (JSON.parse(r.out) as { responses: Record<string, string> }).responses;
    expect(JSON.parse(answers.a)).toEqual({ leases: [], asked: '10.0.0.9', by: 'alice@laptop' });
    const stranger = await cli(['query', 'mammatus.leases', '--identity', mallory.file, '--json', '--timeout', '1s']);
    expect(JSON.parse((JSON.parse(stranger.out) as { responses: Record<string, string> }).responses.a)).toEqual({
      error: 'refused: signed by a key that is not an operator key (trust.operators)',
    });
  });
});
