/**
 * Privilege separation (docs/security.md): a lone controller (real serf agent, the agent bundle as
 * root, its nats-server) runs the metadata service and the SQS/SNS API as child processes under the
 * `mammatus` system user, with no capability, no supplementary group, and no secret on their
 * command line or in their environment; they answer as before, and a killed one is restarted and
 * answers again. Needs root (it switches users and creates the user when missing).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ChildService, serviceArgv, type ChildInit } from '../../core/child-service.js';
import { buildSpawn } from '../../core/exec.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { TestTrust, natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { alive, ensureSystemUser, procArgsAndEnv, procIdentity } from '../../scripts/lib/proc.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually } from '../../scripts/lib/wait.js';
import { skipReason } from './harness.js';

const skip =
  (process.geteuid?.() === 0 ? undefined : 'not root: the agent switches users only as root') ??
  skipReason() ??
  (natsServerAvailable() ? undefined : 'nats-server is not installed (apt-get install nats-server)');
if (skip) console.warn(`privilege separation test skipped: ${skip}`);

const PROXY_SECRET = '5e'.repeat(32);
const SQS_SECRET = 'privs-secret-access-key';
const CANARY = 'canary-in-the-agent-environment';

describe.skipIf(Boolean(skip))('privilege separation of the tenant-facing services', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-privs-'));
  let serf: SerfAgent | undefined;
  let agent: MammatusAgent | undefined;
  const natsPids = new Set<number>();
  const childPids = new Set<number>();

  afterAll(async () => {
    for (const l of agent?.logLines() ?? []) if (typeof l.nats_pid === 'number') natsPids.add(l.nats_pid);
    await agent?.stop();
    await serf?.stop();
    // The agent stops its children; make sure by PID (the children's are checked below first).
    for (const pid of [...natsPids, ...childPids]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it('run as mammatus without capabilities or secrets in /proc, answer, and come back when killed', { timeout: 180_000 }, async () => {
    const uid = ensureSystemUser('mammatus');
    const [nats, cluster, monitor, sqsPort, metadataPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    serf = await startSerfAgent({ name: 'ctl-privs', dir: path.join(root, 'serf'), tags: { role: 'controller' } });
    const files = path.join(root, 'controller');
    const credentials = new TestTrust().mint('ctl-privs', ['controller']);
    agent = await startMammatusAgent({
      dir: path.join(root, 'agent'),
      rpcAddr: serf.rpcAddr,
      credentials,
      env: { ...process.env, MAMMATUS_TEST_CANARY: CANARY },
      extraYaml: [
        'watch_config: false',
        'trust: { allow_plain_serf: true }',
        'roles:',
        '  controller:',
        `    nats: { listen: "127.0.0.1:${nats}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${JSON.stringify(path.join(files, 'nats'))} }`,
        `    paths: { nats_conf: ${JSON.stringify(path.join(files, 'nats-server.conf'))}, members: ${JSON.stringify(path.join(files, 'members'))}, roster: ${JSON.stringify(path.join(files, 'roster.json'))}, firewall: ${JSON.stringify(path.join(files, 'firewall.rules'))} }`,
        '    firewall: { enabled: false }',
        `metadata: { listen: "127.0.0.1:${metadataPort}", proxy_secret: "${PROXY_SECRET}" }`,
        'messaging:',
        `  listen: "127.0.0.1:${sqsPort}"`,
        `  credentials: [{ access_key_id: AKIDPRIVS, secret_access_key: ${SQS_SECRET} }]`,
      ].join('\n'),
    });
    const a = agent;
    /** PIDs of the service's children that said ready, oldest first. */
    const readyPids = (service: string) =>
      a
        .logLines()
        .filter((l) => l.msg === `${service} ready` && typeof l.child_pid === 'number')
        .map((l) => l.child_pid as number);
    const sqs = () =>
      new SQSClient({
        endpoint: `http://127.0.0.1:${sqsPort}`,
        region: 'us-east-1',
        credentials: { accessKeyId: 'AKIDPRIVS', secretAccessKey: SQS_SECRET },
        maxAttempts: 1,
      })
        .send(new ListQueuesCommand({}))
        .then(
          () => 'ok',
          (e: Error) => e.name,
        );
    const healthz = () =>
      fetch(`http://127.0.0.1:${metadataPort}/healthz`).then(
        (r) => r.status,
        () => 0,
      );

    await eventually(async () => expect(await sqs()).toBe('ok'), 60_000, 250);
    await eventually(async () => expect(await healthz()).toBe(200), 30_000, 250);

    const rss: Record<string, number> = {};
    for (const service of ['metadata', 'messaging']) {
      const [pid] = readyPids(service);
      expect(pid, `${service} ready`).toBeTypeOf('number');
      childPids.add(pid);
      const id = procIdentity(pid);
      expect(id.uids).toEqual([uid, uid, uid, uid]);
      expect(id.groups).toEqual([]);
      expect(id.capEff).toBe('0000000000000000');
      expect(id.capPrm).toBe('0000000000000000');
      expect(id.capAmb).toBe('0000000000000000');
      rss[service] = id.rssKb;
      const { cmdline, environ } = procArgsAndEnv(pid);
      expect(cmdline).toContain(`service run ${service}`);
      for (const secret of [credentials.seed, PROXY_SECRET, SQS_SECRET, CANARY]) {
        expect(cmdline).not.toContain(secret);
        expect(environ).not.toContain(secret);
      }
    }
    console.log(`RSS: agent ${procIdentity(a.pid).rssKb} KiB, children: metadata ${rss.metadata} KiB, messaging ${rss.messaging} KiB`);

    // Killed: the supervisor starts it again (backoff 0.5 s), as the same user, and it answers.
    for (const [service, answers] of [
      ['metadata', async () => expect(await healthz()).toBe(200)],
      ['messaging', async () => expect(await sqs()).toBe('ok')],
    ] as const) {
      const [first] = readyPids(service);
      process.kill(first, 'SIGKILL');
      const second = await eventually(() => {
        const pids = readyPids(service);
        expect(pids.length).toBeGreaterThan(1);
        return pids[pids.length - 1];
      }, 30_000);
      childPids.add(second);
      expect(second).not.toBe(first);
      expect(procIdentity(second).uids[1]).toBe(uid);
      await eventually(answers, 30_000, 250);
    }

    // Even an agent killed outright leaves no child behind: each sees its IPC channel close and exits.
    for (const l of a.logLines()) if (typeof l.nats_pid === 'number') natsPids.add(l.nats_pid);
    process.kill(a.pid, 'SIGKILL');
    for (const pid of childPids) await eventually(() => expect(alive(pid)).toBe(false), 15_000, 100);
    expect(a.logLines().some((l) => JSON.stringify(l).includes(SQS_SECRET) || JSON.stringify(l).includes(PROXY_SECRET))).toBe(false);
  });

  it('a missing user means nobody, and a port below 1024 is refused with what to do', { timeout: 60_000 }, async () => {
    const errors: string[] = [];
    const log = pino({ level: 'error' }, { write: (s: string) => void errors.push(s) });
    const child = new ChildService({
      spawn: await buildSpawn({ log }),
      log,
      name: 'metadata',
      argv: serviceArgv([process.execPath, [BUNDLE]], 'metadata'),
      user: 'mammatus-no-such-user',
    });
    const init = (listen: string) => (): ChildInit => ({
      type: 'init',
      service: 'metadata',
      level: 'info',
      section: { listen, proxy_secret: PROXY_SECRET },
      natsUrl: 'nats://127.0.0.1:1',
    });
    const port = await freePort();
    expect(await child.start(init(`127.0.0.1:${port}`))).toBe(`http://127.0.0.1:${port}`);
    childPids.add(child.pid!);
    expect(procIdentity(child.pid!).uids).toEqual([65534, 65534, 65534, 65534]);
    expect(errors.join()).toContain('system user mammatus-no-such-user does not exist');
    // Its metrics reach the agent over the IPC channel (issue 22): a request it answered is counted.
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(503);
    const metrics = await child.metrics(5000);
    expect(metrics).toContain('mammatus_metadata_requests_total{kind="other",outcome="503"} 1');
    expect(metrics).not.toMatch(/^process_/m);
    await child.stop();
    // Only where the kernel keeps low ports for root (the default).
    if (Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) > 81) {
      await expect(child.start(init('127.0.0.1:81'))).rejects.toThrow(/cannot listen on a port below 1024/);
      expect(child.running).toBe(false);
    }
  });
});
