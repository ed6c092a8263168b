/**
 * Integration-test harness for the JetStream engines: real `nats-server -js` processes (stopped by
 * PID), the messaging service on 127.0.0.1:0, and clients pointed at it. Everything started is
 * registered for cleanup with `onTestFinished`/`afterAll` by the caller through `Cleanup`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { freePort } from '../../../scripts/lib/ports.js';
import { sharedTrust, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';
import { startMessagingService, type RunningMessagingService } from '../../../src/messaging/service.js';
import { parseMessagingSettings } from '../../../src/messaging/settings.js';
import type { QueueLog } from '../../../src/messaging/engine/queue-log.js';
import { QueueState, type MessageMeta } from '../../../src/messaging/engine/queue-state.js';
import { CREDENTIALS } from './helpers.js';

/** Undo actions, run in reverse order. */
export class Cleanup {
  private readonly steps: (() => Promise<void> | void)[] = [];
  add(step: () => Promise<void> | void): void {
    this.steps.push(step);
  }
  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop();
      try {
        await step?.();
      } catch {
        // Keep undoing the rest.
      }
    }
  }
}

/** A temp dir removed at cleanup. */
export function tempDir(cleanup: Cleanup, prefix = 'mammatus-msg-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** One nats-server in `dir/<name>`, stopped at cleanup. */
export async function startNats(cleanup: Cleanup, dir: string, name = 'n1'): Promise<NatsServer> {
  const srv = await startNatsServer({ name, dir: path.join(dir, name) });
  cleanup.add(() => srv.stop());
  return srv;
}

/** Three clustered nats-servers (routes between all), each stopped at cleanup. */
export async function startNatsCluster(cleanup: Cleanup, dir: string): Promise<NatsServer[]> {
  const clusterPorts = [await freePort(), await freePort(), await freePort()];
  const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`);
  return Promise.all(
    clusterPorts.map(async (clusterPort, i) => {
      const srv = await startNatsServer({ name: `c${i + 1}`, dir: path.join(dir, `c${i + 1}`), clusterPort, routes });
      cleanup.add(() => srv.stop());
      return srv;
    }),
  );
}

/**
 * Loopback, allow-listed for the tests' SNS http endpoints (servers on 127.0.0.1): loopback is
 * refused by default (engine/endpoint-guard.ts), and the tests allow it rather than weaken that.
 */
export const LOOPBACK_ENDPOINTS = ['127.0.0.0/8', '::1'] as const;

/**
 * The raw `messaging:` section tests use: the test credentials, the default queue lease, short
 * retries, loopback endpoints allowed; `over.sns` is merged into those SNS keys, other keys of
 * `over` replace. The lease stays at its default (10 s) unless a test is about failover
 * (FAILOVER_LEASE): with 3 s a busy machine's 2 s stall fences a lone owner off its own queue, and
 * a receive it ran then hides its messages for their visibility timeout.
 */
/** Short queue leases, for the tests where a controller dies and another takes its queues over. */
export const FAILOVER_LEASE = { owner_lease_seconds: 3 } as const;

export function testSection(nats: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const sns = typeof over.sns === 'object' && over.sns !== null ? over.sns : {};
  return {
    credentials: [{ access_key_id: CREDENTIALS.accessKeyId, secret_access_key: CREDENTIALS.secretAccessKey }],
    nats,
    listen: '127.0.0.1:0',
    ...over,
    sns: {
      http_retries: 3,
      http_min_delay_seconds: 1,
      http_max_delay_seconds: 2,
      http_timeout_seconds: 5,
      endpoint_allow: [...LOOPBACK_ENDPOINTS],
      ...sns,
    },
  };
}

/** The service over `nats` (comma-separated URLs), stopped at cleanup unless the test stops it. */
export async function startService(cleanup: Cleanup, nats: string, over: Record<string, unknown> = {}): Promise<RunningMessagingService> {
  const service = await startMessagingService({
    settings: parseMessagingSettings(testSection(nats, over)),
    log: pino({ level: process.env.MESSAGING_TEST_LOG ?? 'silent' }),
    credentials: sharedTrust().admin,
  });
  cleanup.add(() => service.stop());
  return service;
}

/** SDK client settings for `endpoint`. */
export function sdkConfig(endpoint: string) {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: CREDENTIALS.accessKeyId, secretAccessKey: CREDENTIALS.secretAccessKey },
    maxAttempts: 1,
  };
}

/** A queue read back as a taking-over owner does: every message with its latest delivery state, and the live state records. */
export async function readBack(log: QueueLog, fifo = false): Promise<{ messages: MessageMeta[]; records: Map<number, number[]> }> {
  const state = new QueueState(fifo);
  const { states, records } = await log.rebuild(state);
  for (const s of states) state.restore(s);
  return { messages: [...state.messages.values()], records };
}
