/**
 * Monitoring end to end (issue 22) with Debian's prometheus, prometheus-alertmanager and influxdb,
 * real serf agents, a real controller (its agent, nats-server, the SQS/SNS API) and a second
 * admitted node. Nothing here is a stand-in:
 *
 * - every member's agent is scraped through the controller's agent (NATS); a member that joins is
 *   a healthy target within a few scrape intervals, with no daemon restarted; one that leaves is
 *   dropped;
 * - the samples land in InfluxDB through Prometheus' remote write and answer an InfluxQL query;
 * - a role forced into error fires `MammatusRoleError`, which Alertmanager (its own SNS client,
 *   SigV4) publishes to our SNS topic, and an SQS queue subscribed to it receives the alert.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as Sns from '@aws-sdk/client-sns';
import * as Sqs from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOnPath } from '../../core/exec.js';
import { readCredentials } from '../../core/trust.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually } from '../../scripts/lib/wait.js';
import { skipReason, testControllerYaml } from './harness.js';

const exec = promisify(execFile);
const PROGRAMS = ['prometheus', 'prometheus-alertmanager', 'influxd'];
const skip =
  skipReason() ??
  (natsServerAvailable() ? undefined : 'nats-server is missing') ??
  (process.getuid?.() === 0 ? undefined : 'the monitoring daemons run as their own users: needs root') ??
  (PROGRAMS.every((p) => findOnPath(p))
    ? undefined
    : `needs ${PROGRAMS.join(', ')} (apt-get install prometheus prometheus-alertmanager influxdb)`);
if (skip) console.warn(`monitoring end-to-end test skipped: ${skip}`);

const KEY = { id: 'AKIDMONITORING', secret: 'monitoring-e2e-secret-key-0123456789' };

describe.skipIf(Boolean(skip))('monitoring end to end: scrape, store, alert into SNS and SQS', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-mon-e2e-'));
  // The daemons' users must reach their files below it.
  chmodSync(root, 0o711);
  const rpcAuth = 'monitoring-e2e-rpc-key';
  const serfs: SerfAgent[] = [];
  const agents: MammatusAgent[] = [];
  const ports: Record<string, number> = {};
  let ctlSerf: SerfAgent;
  let nodeSerf: SerfAgent;
  let queueUrl = '';
  let sqs: Sqs.SQSClient;

  const prom = async <T>(api: string) => {
    const r = await fetch(`http://127.0.0.1:${ports.prometheus}${api}`, { signal: AbortSignal.timeout(5000) });
    return ((await r.json()) as { data: T }).data;
  };
  const targets = () =>
    prom<{ activeTargets: { labels: Record<string, string>; health: string }[] }>('/api/v1/targets?state=active').then((d) =>
      Object.fromEntries(d.activeTargets.filter((t) => t.labels.job === 'mammatus').map((t) => [t.labels.node, t.health])),
    );

  beforeAll(async () => {
    for (const k of ['prometheus', 'alertmanager', 'influx', 'influxRpc', 'sqs', 'metadata']) ports[k] = await freePort();
    const gossipKey = (await exec('serf', ['keygen'])).stdout.trim();
    const serf = async (name: string, tags: Record<string, string>) => {
      const s = await startSerfAgent({ name, dir: path.join(root, name, 'serf'), tags, rpcAuth, encryptKey: gossipKey });
      serfs.push(s);
      return s;
    };
    ctlSerf = await serf('ctl-1', { role: 'controller' });
    const dir = path.join(root, 'ctl-1');
    const creds = path.join(dir, 'agent', 'state', 'credentials.json');
    const cli = (...args: string[]) =>
      exec(process.execPath, [BUNDLE, '--rpc-addr', ctlSerf.rpcAddr, '--rpc-auth', rpcAuth, '--credentials', creds, ...args], {
        timeout: 30_000,
      });
    await cli('node', 'admit', 'ctl-1', '--role', 'controller');
    const controller = await testControllerYaml(dir);
    const at = (name: string) => JSON.stringify(path.join(dir, name));
    agents.push(
      await startMammatusAgent({
        dir: path.join(dir, 'agent'),
        rpcAddr: ctlSerf.rpcAddr,
        rpcAuth,
        extraYaml: [
          'watch_config: false',
          ...controller.lines,
          '    monitoring:',
          '      store: influxdb',
          `      config_dir: ${at('monitoring')}`,
          `      prometheus: { listen: "127.0.0.1:${ports.prometheus}", data_dir: ${at('prometheus')}, scrape_interval: 1s, evaluation_interval: 1s }`,
          `      alertmanager: { listen: "127.0.0.1:${ports.alertmanager}", data_dir: ${at('alertmanager')} }`,
          `      influxdb: { listen: "127.0.0.1:${ports.influx}", rpc_listen: "127.0.0.1:${ports.influxRpc}", data_dir: ${at('influxdb')} }`,
          `      alerts: { for: 1s, group_wait: 1s, sns: { topic: ops-alerts, access_key_id: ${KEY.id}, secret_access_key: ${KEY.secret}, endpoint: "http://127.0.0.1:${ports.sqs}" } }`,
          `metadata: { listen: "127.0.0.1:${ports.metadata}", proxy_secret: "${'ab'.repeat(32)}" }`,
          `messaging: { listen: "127.0.0.1:${ports.sqs}", credentials: [{ access_key_id: ${KEY.id}, secret_access_key: ${KEY.secret} }] }`,
        ].join('\n'),
      }),
    );
    // The operator's side: a topic for the alerts and a queue subscribed to it.
    const sdk = {
      endpoint: `http://127.0.0.1:${ports.sqs}`,
      region: 'us-east-1',
      credentials: { accessKeyId: KEY.id, secretAccessKey: KEY.secret },
      maxAttempts: 1,
    };
    const sns = new Sns.SNSClient(sdk);
    sqs = new Sqs.SQSClient(sdk);
    const { TopicArn } = await eventually(() => sns.send(new Sns.CreateTopicCommand({ Name: 'ops-alerts' })), 60_000, 500);
    queueUrl = (await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'pager' }))).QueueUrl!;
    await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: 'arn:aws:sqs:us-east-1:000000000000:pager' }));

    // The second node: admitted as a gateway, its Serf not yet joined.
    const file = path.join(root, 'n1.json');
    await cli('node', 'admit', 'n1', '--role', 'gateway', '--out', file, '--nats', controller.natsUrl);
    nodeSerf = await serf('n1', {});
    agents.push(
      await startMammatusAgent({
        dir: path.join(root, 'n1', 'agent'),
        rpcAddr: nodeSerf.rpcAddr,
        rpcAuth,
        credentials: (await readCredentials(file))!,
        // A gateway config the role refuses (an unknown key): the role goes into error once tagged.
        extraYaml: `watch_config: false\nroles: { gateway: { registry: { nats: ["${controller.natsUrl}"] }, no_such_setting: 1 } }`,
      }),
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled(serfs.map((s) => s.stop()));
    rmSync(root, { recursive: true, force: true });
  });

  it("scrapes the controller's own agent through its listener", async () => {
    await eventually(async () => expect(await targets()).toEqual({ 'ctl-1': 'up' }), 60_000, 500);
    const q = await prom<{ result: { metric: Record<string, string> }[] }>(
      `/api/v1/query?query=${encodeURIComponent('mammatus_role_state{state="ok"} == 1')}`,
    );
    expect(q.result.map((r) => [r.metric.node, r.metric.role])).toContainEqual(['ctl-1', 'controller']);
  });

  it('scrapes a member that joins within a few scrape intervals, without restarting Prometheus', async () => {
    const before = (await prom<{ startTime: string }>('/api/v1/status/runtimeinfo')).startTime;
    const joined = Date.now();
    await exec('serf', ['join', `-rpc-addr=${nodeSerf.rpcAddr}`, `-rpc-auth=${rpcAuth}`, ctlSerf.bindAddr]);
    await eventually(async () => expect((await targets()).n1).toBe('up'), 30_000, 200);
    const seconds = (Date.now() - joined) / 1000;
    console.log(`n1 scraped ${seconds.toFixed(1)} s after it joined (scrape interval 1 s)`);
    expect(seconds).toBeLessThan(10);
    expect((await prom<{ startTime: string }>('/api/v1/status/runtimeinfo')).startTime).toBe(before);
  });

  it('keeps the samples in InfluxDB through remote write, for InfluxQL', async () => {
    const influx = async (q: string) =>
      (await (
        await fetch(`http://127.0.0.1:${ports.influx}/query?${new URLSearchParams({ db: 'mammatus', q }).toString()}`, {
          signal: AbortSignal.timeout(5000),
        })
      ).json()) as { results: { series?: { columns: string[]; values: unknown[][] }[] }[] };
    const r = await eventually(
      async () => {
        const got = await influx(`SELECT last("value") FROM "mammatus_agent_info" WHERE "node" = 'n1'`);
        expect(got.results[0].series?.[0].values.length).toBe(1);
        return got;
      },
      30_000,
      500,
    );
    expect(r.results[0].series![0].values[0][1]).toBe(1);
    // Remote write sends in batches: each series arrives on its own time.
    await eventually(
      async () => {
        const up = await influx(`SELECT count("value") FROM "up" WHERE "job" = 'mammatus' GROUP BY "node"`);
        expect(up.results[0].series?.length).toBe(2);
      },
      30_000,
      500,
    );
  });

  it('fires MammatusRoleError for a role forced into error, into the SNS topic and on to the subscribed queue', async () => {
    await exec('serf', ['tags', `-rpc-addr=${nodeSerf.rpcAddr}`, `-rpc-auth=${rpcAuth}`, '-set', 'role=gateway']);
    const got = await eventually(
      async () => {
        const r = await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 2 }));
        const hit = (r.Messages ?? []).find((m) => m.Body?.includes('MammatusRoleError'));
        expect(hit).toBeDefined();
        return hit!;
      },
      90_000,
      0,
    );
    const envelope = JSON.parse(got.Body!) as { Type: string; TopicArn: string; Message: string; Subject?: string };
    expect(envelope).toMatchObject({ Type: 'Notification', TopicArn: 'arn:aws:sns:us-east-1:000000000000:ops-alerts' });
    expect(envelope.Message).toContain('n1');
    expect(envelope.Message).toContain('gateway');
    const firing = await prom<{ alerts: { labels: Record<string, string>; state: string }[] }>('/api/v1/alerts');
    expect(firing.alerts).toContainEqual(
      expect.objectContaining({
        state: 'firing',
        labels: expect.objectContaining({ alertname: 'MammatusRoleError', node: 'n1', role: 'gateway' }),
      }),
    );
  });

  it('drops a member that leaves', async () => {
    await exec('serf', ['leave', `-rpc-addr=${nodeSerf.rpcAddr}`, `-rpc-auth=${rpcAuth}`]);
    await eventually(async () => expect(Object.keys(await targets())).toEqual(['ctl-1']), 30_000, 200);
  });
});
