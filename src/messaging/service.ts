/**
 * The SQS/SNS API as a running thing: a NATS connection that reconnects forever, the JetStream
 * engines, and the HTTP listener. Used by `mammatus messaging serve` and by the controller role;
 * `stop()` undoes everything `start` did, in reverse, and may be called more than once.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { FastifyInstance } from 'fastify';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from '../../core/contracts.js';
import { connectNats, type ConnectNatsOptions } from '../../core/nats.js';
import { startJetStreamEngines, type JetStreamEngines } from './engine/index.js';
import { buildMessagingApp } from './http.js';
import type { MessagingSettings } from './settings.js';
import { splitHostPort } from '../../core/net.js';
import { nodeTls, watchNodeTls } from '../../core/node-tls.js';

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
  const appOptions = {
    config: settings.wire,
    sqs: engines.sqs,
    sns: engines.sns,
    log,
    signingCertificate: { path: engines.snsRuntime.certificatePath, pem: engines.snsRuntime.identity.certPem },
  };
  let tls = opts.tls ?? nodeTls();
  let app = buildMessagingApp({ ...appOptions, ...(tls ? { https: tls } : {}) });
  // The plain listener (`messaging.http_listen`) is a second app on the same engines.
  const plain = settings.engine.httpListen ? buildMessagingApp(appOptions) : undefined;
  const listen = opts.listen ?? settings.engine.listen;
  try {
    url = await listenOn(app, listen, tls ? 'https' : 'http');
    if (plain) await listenOn(plain, settings.engine.httpListen!, 'http');
  } catch (err) {
    await app.close();
    await plain?.close();
    await engines.stop();
    await nc.close().catch(() => undefined);
    throw err;
  }
  const httpUrl = plain ? urlOf(plain, 'http') : undefined;
  log.info({ url, http_url: httpUrl, nats: servers, verifySignatures: settings.wire.verify_signatures }, 'messaging API listening');
  let stopping: Promise<void> | undefined;
  /**
   * A renewal swaps the HTTPS listener's context (open connections carry on). The node's first
   * certificate (the API started before `ca init`) moves the listener from HTTP to HTTPS on the
   * same port: its clients see a second's refusal, then TLS.
   */
  let upgrading: Promise<void> = Promise.resolve();
  const setTls = (next: { readonly cert: string; readonly key: string }) => {
    if (tls) return (app.server as unknown as TlsServer).setSecureContext({ cert: next.cert, key: next.key });
    upgrading = upgrading.then(async () => {
      if (stopping || tls) return;
      const secure = buildMessagingApp({ ...appOptions, https: next });
      const port = (app.server.address() as { port?: number } | null)?.port;
      await app.close();
      const at = port && listen.endsWith(':0') ? listen.replace(/:0$/, `:${port}`) : listen;
      url = await listenOn(secure, at, 'https').catch(async (err: unknown) => {
        log.error({ err }, 'messaging API: moving to HTTPS failed; back on HTTP');
        const again = buildMessagingApp(appOptions);
        await listenOn(again, at, 'http');
        app = again;
        throw err;
      });
      app = secure;
      tls = next;
      log.info({ url }, 'messaging API: now HTTPS (the node certificate arrived)');
    });
    upgrading = upgrading.catch(() => undefined);
  };
  // The node certificate's renewals, when it is the one served.
  const unwatch = opts.tls
    ? undefined
    : watchNodeTls(() => {
        const next = nodeTls();
        if (next) setTls(next);
      });
  return {
    get url() {
      return url;
    },
    ...(httpUrl ? { httpUrl } : {}),
    engines,
    nc,
    get app() {
      return app;
    },
    setTls,
    stop() {
      stopping ??= (async () => {
        unwatch?.();
        await upgrading;
        await plain?.close();
        await app.close();
        await engines.stop();
        await nc.drain().catch(() => nc.close());
      })();
      return stopping;
    },
  };
}

/** Listens on `listen` (`host:port`, port 0 = any) and returns the URL clients reach it at. */
async function listenOn(app: FastifyInstance, listen: string, scheme: 'http' | 'https'): Promise<string> {
  const { host, port } = splitHostPort(listen, { allowPortZero: true });
  await app.listen({ host, port });
  return urlOf(app, scheme);
}

/** The URL of a listening app, a wildcard address shown as loopback. */
function urlOf(app: FastifyInstance, scheme: 'http' | 'https'): string {
  const addr = app.server.address();
  if (typeof addr !== 'object' || !addr) throw new Error('the messaging API is not listening');
  const host = addr.address === '0.0.0.0' || addr.address === '::' ? '127.0.0.1' : addr.address;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
}
