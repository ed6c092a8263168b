/**
 * A config reload reaches the services a controller hosts: a lone controller (real serf agent, the
 * agent bundle, its nats-server, the SQS/SNS API) started with two key pairs; the operator revokes
 * one (say it leaked), adds another and sends SIGHUP, as docs/configuration.md says. The revoked
 * key is refused and the new one accepted without an agent restart, and no secret reaches the log.
 */
import { readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, describe, expect, it } from 'vitest';
import { startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { TestTrust, natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually } from '../../scripts/lib/wait.js';
import { skipReason } from './harness.js';

const skip = skipReason() ?? (natsServerAvailable() ? undefined : 'nats-server is not installed (apt-get install nats-server)');
if (skip) console.warn(`controller reload test skipped: ${skip}`);

describe.skipIf(Boolean(skip))('controller: config reload', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ctl-reload-'));
  let serf: SerfAgent | undefined;
  let agent: MammatusAgent | undefined;
  const natsPids = new Set<number>();

  afterAll(async () => {
    for (const l of agent?.logLines() ?? []) if (typeof l.nats_pid === 'number') natsPids.add(l.nats_pid);
    await agent?.stop();
    await serf?.stop();
    // The agent stops its nats-server; make sure by PID.
    for (const pid of natsPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it('messaging.credentials changed by SIGHUP: the revoked key is refused, the added one accepted', { timeout: 120_000 }, async () => {
    const [nats, cluster, monitor, sqsPort, metadataPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    serf = await startSerfAgent({ name: 'ctl-reload', dir: path.join(root, 'serf'), tags: { role: 'controller' } });
    const files = path.join(root, 'controller');
    const creds = (pairs: [string, string][]) =>
      pairs.map(([id, secret]) => `    - { access_key_id: ${id}, secret_access_key: ${secret} }`);
    agent = await startMammatusAgent({
      dir: path.join(root, 'agent'),
      rpcAddr: serf.rpcAddr,
      credentials: new TestTrust().mint('ctl-reload', ['controller']),
      extraYaml: [
        'watch_config: false',
        // No RPC key on this Serf, and the host's firewall stays untouched (covered elsewhere).
        'trust: { allow_plain_serf: true }',
        'roles:',
        '  controller:',
        `    nats: { listen: "127.0.0.1:${nats}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${JSON.stringify(path.join(files, 'nats'))} }`,
        `    paths: { nats_conf: ${JSON.stringify(path.join(files, 'nats-server.conf'))}, members: ${JSON.stringify(path.join(files, 'members'))}, roster: ${JSON.stringify(path.join(files, 'roster.json'))}, firewall: ${JSON.stringify(path.join(files, 'firewall.rules'))} }`,
        '    firewall: { enabled: false }',
        `metadata: { listen: "127.0.0.1:${metadataPort}", proxy_secret: "${'05'.repeat(32)}" }`,
        'messaging:',
        `  listen: "127.0.0.1:${sqsPort}"`,
        '  credentials:',
        ...creds([
          ['AKIDFIRST', 'first-secret-key'],
          ['AKIDSECOND', 'second-secret-key'],
        ]),
      ].join('\n'),
    });
    const a = agent;
    const call = (id: string, secret: string) =>
      new SQSClient({
        endpoint: `http://127.0.0.1:${sqsPort}`,
        region: 'us-east-1',
        credentials: { accessKeyId: id, secretAccessKey: secret },
        maxAttempts: 1,
      })
        .send(new ListQueuesCommand({}))
        .then(
          () => 'ok',
          (e: Error) => e.name,
        );
    await eventually(async () => expect(await call('AKIDFIRST', 'first-secret-key')).toBe('ok'), 60_000, 250);
    expect(await call('AKIDSECOND', 'second-secret-key')).toBe('ok');

    const text = readFileSync(a.configPath, 'utf8');
    writeFileSync(
      a.configPath,
      text.replace(
        '{ access_key_id: AKIDSECOND, secret_access_key: second-secret-key }',
        '{ access_key_id: AKIDTHIRD, secret_access_key: third-secret-key }',
      ),
    );
    process.kill(a.pid, 'SIGHUP');
    await eventually(
      () =>
        expect(a.logLines().some((l) => l.msg === 'hosted service restarting: its config changed' && l.service === 'messaging')).toBe(true),
      20_000,
      100,
    );
    await eventually(async () => expect(await call('AKIDTHIRD', 'third-secret-key')).toBe('ok'), 30_000, 250);
    expect(await call('AKIDSECOND', 'second-secret-key')).toBe('InvalidClientTokenId');
    expect(await call('AKIDFIRST', 'first-secret-key')).toBe('ok');
    // Only messaging changed: the metadata service kept running.
    expect(
      a
        .logLines()
        .filter((l) => l.msg === 'hosted service restarting: its config changed')
        .map((l) => l.service),
    ).toEqual(['messaging']);
    expect(readFileSync(a.logFile, 'utf8').match(/first-secret-key|second-secret-key|third-secret-key/g)).toBeNull();
  });
});
