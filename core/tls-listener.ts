/**
 * A listener that serves the node certificate (issue 20): HTTPS when the process has one
 * (core/node-tls.ts), plain HTTP before. Renewals swap the secure context (`setSecureContext`: open
 * connections carry on, new ones get the new certificate). The node's first certificate (a service
 * started before `ca init`) moves the listener from HTTP to HTTPS on the same port: its clients see a
 * moment's refusal, then TLS. Used by the SQS/SNS API and the metadata service (both plain node:http).
 */
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from './contracts.js';
import { splitHostPort } from './net.js';
import { nodeTls, watchNodeTls } from './node-tls.js';

/** What can listen: a server of the SQS/SNS API or of the metadata service. */
export interface Listenable {
  readonly server: { address(): AddressInfo | string | null };
  listen(opts: { host: string; port: number }): Promise<unknown>;
  close(): Promise<unknown>;
}

/** A certificate chain and its key (PEM). */
export interface ServedCert {
  readonly cert: string;
  readonly key: string;
}

/** What `listenWithNodeTls` needs. */
export interface NodeTlsListenerOptions<A extends Listenable> {
  /** Builds the app: with `https` an HTTPS server, without a plain one. Called again on the move to HTTPS. */
  readonly build: (https?: ServedCert) => A;
  /** `host:port` (port 0: any free port, kept on the move to HTTPS). */
  readonly listen: string;
  readonly log: Logger;
  /** In log lines (`messaging API`, `metadata service`). */
  readonly name: string;
  /** Serve this certificate instead of the node's (tests, benchmarks); then nothing is followed. */
  readonly tls?: ServedCert;
}

/** A listening app that follows the node certificate. */
export interface NodeTlsListener<A extends Listenable> {
  /** `https://host:port` (or `http://` without a certificate); a wildcard host shown as loopback. */
  readonly url: string;
  readonly app: A;
  /** Serves `cert` from now on (HTTPS: swaps the context; HTTP: moves to HTTPS). */
  setTls(cert: ServedCert): void;
  close(): Promise<void>;
}

/** Listens on `opts.listen` with the node certificate when there is one. */
export async function listenWithNodeTls<A extends Listenable>(opts: NodeTlsListenerOptions<A>): Promise<NodeTlsListener<A>> {
  let tls: ServedCert | undefined = opts.tls ?? nodeTls();
  let app = opts.build(tls);
  let url = await listenOn(app, opts.listen, tls ? 'https' : 'http').catch(async (err: unknown) => {
    await app.close();
    throw err;
  });
  let closing = false;
  let moving: Promise<void> = Promise.resolve();

  const moveToHttps = async (cert: ServedCert): Promise<void> => {
    if (closing || tls) return;
    const port = (app.server.address() as { port?: number } | null)?.port;
    const at = port && /:0$/.test(opts.listen) ? opts.listen.replace(/:0$/, `:${port}`) : opts.listen;
    // Built before the plain app closes: a certificate that cannot be served (a key that does not
    // match it) throws here and leaves the plain listener answering instead of closed for good.
    let secure: A;
    try {
      secure = opts.build(cert);
    } catch (err) {
      opts.log.error({ err }, `${opts.name}: the node certificate cannot be served; staying on HTTP`);
      return;
    }
    await app.close();
    try {
      url = await listenOn(secure, at, 'https');
    } catch (err) {
      opts.log.error({ err }, `${opts.name}: moving to HTTPS failed; back on HTTP`);
      app = opts.build();
      url = await listenOn(app, at, 'http');
      return;
    }
    app = secure;
    tls = cert;
    opts.log.info({ url }, `${opts.name}: now HTTPS (the node certificate arrived)`);
  };
  const setTls = (cert: ServedCert): void => {
    if (tls) {
      (app.server as unknown as TlsServer).setSecureContext({ cert: cert.cert, key: cert.key });
      tls = cert;
      return;
    }
    moving = moving.then(() => moveToHttps(cert)).catch((err: unknown) => opts.log.error({ err }, `${opts.name}: not listening`));
  };
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
    get app() {
      return app;
    },
    setTls,
    async close() {
      closing = true;
      unwatch?.();
      await moving;
      await app.close();
    },
  };
}

/** Listens on `listen` (`host:port`, port 0 = any) and returns the URL clients reach it at. */
export async function listenOn(app: Listenable, listen: string, scheme: 'http' | 'https'): Promise<string> {
  const { host, port } = splitHostPort(listen, { allowPortZero: true });
  await app.listen({ host, port });
  return urlOf(app, scheme);
}

/** The URL of a listening app, a wildcard address shown as loopback. */
export function urlOf(app: Listenable, scheme: 'http' | 'https'): string {
  const addr = app.server.address();
  if (typeof addr !== 'object' || !addr) throw new Error('not listening');
  const host = addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address === '::' ? '::1' : addr.address;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
}
