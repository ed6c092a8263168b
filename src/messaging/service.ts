/**
 * The SQS/SNS API as a running thing: a NATS connection that reconnects forever, the JetStream
 * engines, and the HTTP listener. Used by `mammatus messaging serve` and by the controller role;
 * `stop()` undoes everything `start` did, in reverse, and may be called more than once.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../core/contracts.js';
import { connectNats, type ConnectNatsOptions } from '../../core/nats.js';
import { startJetStreamEngines, type JetStreamEngines } from './engine/index.js';
import { buildMessagingApp } from './http.js';
import type { MessagingSettings } from './settings.js';
import { splitHostPort } from '../../core/net.js';

/** Options of `startMessagingService`. */
export interface StartMessagingOptions {
  readonly settings: MessagingSettings;
  /** Overrides `messaging.nats` / `messaging.listen` (the `--nats` and `--listen` flags). */
  readonly nats?: string;
  readonly listen?: string;
  readonly log: Logger;
  /** The node's NATS credentials (core/trust.ts); the controllers refuse anonymous clients. */
  readonly credentials?: ConnectNatsOptions['credentials'];
}

/** A started messaging service. */
export interface RunningMessagingService {
  /** `http://host:port` it listens on. */
  readonly url: string;
  readonly engines: JetStreamEngines;
  readonly nc: NatsConnection;
  readonly app: FastifyInstance;
  stop(): Promise<void>;
}

// SQS messages reach 1 MiB; with attributes, headers and the forwarding envelope NATS must carry more.
const MIN_PAYLOAD = 1024 * 1024 + 128 * 1024;

/** Connects, creates what is missing in JetStream, starts the engines and listens. */
export async function startMessagingService(opts: StartMessagingOptions): Promise<RunningMessagingService> {
  const { settings, log } = opts;
  const servers = opts.nats ?? settings.engine.nats;
  // The connection waits for NATS as long as it takes (a controller's nats-server may still be
  // starting); say so when that takes a while, or a server that is not there looks like a hang.
  const waiting = setTimeout(() => log.warn({ nats: servers }, 'waiting for NATS to accept a connection'), 3000);
  const nc = await connectNats(servers, { name: 'mammatus-messaging', persistent: true, credentials: opts.credentials }).finally(() =>
    clearTimeout(waiting),
  );
  const maxPayload = nc.info?.max_payload ?? 0;
  if (maxPayload < MIN_PAYLOAD)
    log.warn({ maxPayload }, 'nats-server max_payload is below 1.125 MiB: large SQS messages will fail (set max_payload: 2MB)');
  let url = '';
  const publicUrl = () => settings.wire.base_url ?? url;
  let engines: JetStreamEngines;
  try {
    engines = await startJetStreamEngines({
      nc,
      settings: settings.engine,
      accountId: settings.wire.account_id,
      region: settings.wire.region,
      publicUrl,
      log,
    });
  } catch (err) {
    await nc.close().catch(() => undefined);
    throw err;
  }
  const app = buildMessagingApp({
    config: settings.wire,
    sqs: engines.sqs,
    sns: engines.sns,
    log,
    signingCertificate: { path: engines.snsRuntime.certificatePath, pem: engines.snsRuntime.identity.certPem },
  });
  const { host, port } = splitHostPort(opts.listen ?? settings.engine.listen, { allowPortZero: true });
  try {
    await app.listen({ host, port });
  } catch (err) {
    await engines.stop();
    await nc.close().catch(() => undefined);
    throw err;
  }
  const addr = app.server.address();
  const shownHost =
    typeof addr === 'object' && addr ? (addr.address === '0.0.0.0' || addr.address === '::' ? '127.0.0.1' : addr.address) : host;
  url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${typeof addr === 'object' && addr ? addr.port : port}`;
  log.info({ url, nats: servers, verifySignatures: settings.wire.verify_signatures }, 'messaging API listening');
  let stopping: Promise<void> | undefined;
  return {
    url,
    engines,
    nc,
    app,
    stop() {
      stopping ??= (async () => {
        await app.close();
        await engines.stop();
        await nc.drain().catch(() => nc.close());
      })();
      return stopping;
    },
  };
}
