/**
 * The SQS/SNS API as a running thing: a NATS connection that reconnects forever, the JetStream
 * engines, and the HTTP listener. Used by `mammatus messaging serve` and by the controller role;
 * `stop()` undoes everything `start` did, in reverse, and may be called more than once.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../core/contracts.js';
import { connectNats, type ConnectNatsOptions } from '../../core/nats.js';
import { startJetStreamEngines, type JetStreamEngines } from './engine/index.js';
import { buildMessagingApp, type MessagingApp } from './http.js';
import { exportQueueDepths } from './metrics.js';
import type { MessagingSettings } from './settings.js';
import { listenOn, listenWithNodeTls, urlOf, type NodeTlsListener } from '../../core/tls-listener.js';

/** Options of `startMessagingService`. */
export interface StartMessagingOptions {
  readonly settings: MessagingSettings;
  /** Overrides `messaging.nats` / `messaging.listen` (the `--nats` and `--listen` flags). */
  readonly nats?: string;
  readonly listen?: string;
  readonly log: Logger;
  /** The node's NATS credentials (core/trust.ts); the controllers refuse anonymous clients. */
  readonly credentials?: ConnectNatsOptions['credentials'];
  /**
   * `listen` serves HTTPS with this certificate; default: the node certificate (core/node-tls.ts),
   * followed through renewals; plain HTTP while there is none.
   */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** A started messaging service. */
export interface RunningMessagingService {
  /** `https://host:port` (or `http://` without a certificate) it listens on. */
  readonly url: string;
  /** `http://host:port` of the plain listener (`messaging.http_listen`), when there is one. */
  readonly httpUrl?: string;
  /** Swaps the certificate of the HTTPS listener (a renewal): new connections get it, open ones carry on. */
  setTls(tls: { readonly cert: string; readonly key: string }): void;
  readonly engines: JetStreamEngines;
  readonly nc: NatsConnection;
  /** The HTTPS (or, before a certificate, HTTP) server; `app.handle` takes injected requests (tests). */
  readonly app: MessagingApp;
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
  let main: NodeTlsListener<MessagingApp> | undefined;
  const publicUrl = () => settings.wire.base_url ?? main?.url ?? url;
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
  const appOptions = {
    config: settings.wire,
    sqs: engines.sqs,
    sns: engines.sns,
    log,
    signingCertificate: { path: engines.snsRuntime.certificatePath, pem: engines.snsRuntime.identity.certPem },
  };
  // The plain listener (`messaging.http_listen`) is a second server on the same engines.
  const plain = settings.engine.httpListen ? buildMessagingApp(appOptions) : undefined;
  try {
    main = await listenWithNodeTls({
      build: (https) => buildMessagingApp({ ...appOptions, ...(https ? { https } : {}) }),
      listen: opts.listen ?? settings.engine.listen,
      log,
      name: 'messaging API',
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
    url = main.url;
    if (plain) await listenOn(plain, settings.engine.httpListen!, 'http');
  } catch (err) {
    await main?.close();
    await plain?.close();
    await engines.stop();
    await nc.close().catch(() => undefined);
    throw err;
  }
  const httpUrl = plain ? urlOf(plain, 'http') : undefined;
  log.info({ url, http_url: httpUrl, nats: servers, verifySignatures: settings.wire.verify_signatures }, 'messaging API listening');
  let stopping: Promise<void> | undefined;
  const listener = main;
  const unexport = exportQueueDepths(() => engines.router.depths());
  return {
    get url() {
      return listener.url;
    },
    ...(httpUrl ? { httpUrl } : {}),
    engines,
    nc,
    get app() {
      return listener.app;
    },
    setTls: (cert) => listener.setTls(cert),
    stop() {
      stopping ??= (async () => {
        unexport();
        await plain?.close();
        await listener.close();
        await engines.stop();
        await nc.drain().catch(() => nc.close());
      })();
      return stopping;
    },
  };
}
