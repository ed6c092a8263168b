/**
 * The metadata service as a running thing: a NATS connection that reconnects forever, the watched
 * registry, the HTTP app, and the vendor-data source. Used by `mammatus metadata serve` and by the
 * controller role; stop() undoes everything start did, in reverse.
 */
import type { Server } from 'node:http';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../core/contracts.js';
import { connectNats, type ConnectNatsOptions } from '../../core/nats.js';
import type { MetadataSettings } from './config.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import { buildMetadataProxy, type MacLookup } from './proxy.js';
import { RegistryView } from '../registry/view.js';
import { exportRegistrySize } from './metrics.js';
import { buildMetadataApp } from './server.js';
import { TokenAuthority } from './tokens.js';
import { splitHostPort } from '../../core/net.js';
import { natsHostApi } from './host-api.js';
import { natsRootPem } from '../../core/nats.js';
import { listenWithNodeTls, type ServedCert } from '../../core/tls-listener.js';

/** Produces an instance's vendor-data (see vendor-data.ts); may be slow (it can mint credentials). */
export type VendorDataSource = (record: InstanceRecord, callerIp: string) => Promise<string>;

/** A started metadata service. */
export interface RunningMetadataService {
  /** `https://host:port` (or `http://` before the node has its certificate) it listens on. */
  readonly url: string;
  readonly view: RegistryView;
  /** Serves `cert` from now on (a renewal; tests). */
  setTls(cert: ServedCert): void;
  stop(): Promise<void>;
}

/** Options of `startMetadataService`. */
export interface StartMetadataOptions {
  readonly settings: MetadataSettings;
  /** Overrides `settings.nats` / `settings.listen` (the `--nats` and `--listen` flags). */
  readonly nats?: string;
  readonly listen?: string;
  readonly vendorData: VendorDataSource;
  readonly log: Logger;
  /** The node's NATS credentials (core/trust.ts); the controllers refuse anonymous clients. */
  readonly credentials?: ConnectNatsOptions['credentials'];
  /** Serve HTTPS with this certificate; default: the node certificate, followed (core/tls-listener.ts). */
  readonly tls?: ServedCert;
}

/**
 * Starts listening at once; the registry becomes available when NATS answers (until then every
 * instance path is 503), so a controller's service can come up before its NATS server has.
 */
export async function startMetadataService(opts: StartMetadataOptions): Promise<RunningMetadataService> {
  const { settings, log } = opts;
  const servers = opts.nats ?? settings.nats;
  let nc: NatsConnection | undefined;
  let view: RegistryView | undefined;
  let closed = false;
  // A lookup that is "unavailable" until the connection exists, then delegates to the view.
  const lookup = {
    get available() {
      return view?.available ?? false;
    },
    byMac: (mac: string) => view?.byMac(mac),
    byIp: (ip: string) => view?.byIp(ip),
    byId: (id: string) => view?.byId(id),
  };
  const connecting = connectNats(servers, { name: 'mammatus-metadata', persistent: true, credentials: opts.credentials }).then(
    (c) => {
      if (closed) return void c.close();
      nc = c;
      view = RegistryView.start(c, log.child({ component: 'registry' }), settings.registryReplicas);
    },
    (err: unknown) => log.error({ err }, 'NATS connection failed for good'),
  );
  const appDeps = {
    lookup,
    ...(settings.proxySecret ? { secret: settings.proxySecret } : {}),
    tokens: new TokenAuthority(settings.proxySecret),
    tokenMode: settings.tokens,
    trustSourceAddress: settings.trustSourceAddress,
    domain: settings.domain,
    availabilityZone: settings.availabilityZone,
    vendorData: opts.vendorData,
    // Planned hosts: their secrets and their join go over the same connection as the registry.
    hosts: natsHostApi(() => nc, settings.hosts),
    log,
  };
  // HTTPS with the node certificate once there is one (issue 20): gateways' proxies verify it.
  const listener = await listenWithNodeTls({
    build: (https) => buildMetadataApp({ ...appDeps, ...(https ? { https } : {}) }),
    listen: opts.listen ?? settings.listen,
    log,
    name: 'metadata service',
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
  log.info({ url: listener.url, nats: servers, signedProxy: Boolean(settings.proxySecret) }, 'metadata service listening');
  const unexport = exportRegistrySize(() => (view?.available ? view.size : undefined));
  return {
    get url() {
      return listener.url;
    },
    setTls: (cert) => listener.setTls(cert),
    get view() {
      return view as RegistryView;
    },
    async stop() {
      closed = true;
      unexport();
      await listener.close();
      view?.stop();
      await nc?.close().catch(() => undefined);
      // A connection made after the stop is closed by its own handler (above).
      await connecting.catch(() => undefined);
    },
  };
}

/** A started metadata proxy. */
export interface RunningMetadataProxy {
  readonly url: string;
  readonly server: Server;
  stop(): Promise<void>;
}

/** Starts the proxy a gateway runs in front of the service; needs the cluster secret. `macOf` finds callers' MACs. */
export async function startMetadataProxy(opts: {
  settings: MetadataSettings;
  upstreams?: readonly string[];
  listen?: string;
  macOf: MacLookup;
  log: Logger;
}): Promise<RunningMetadataProxy> {
  const { settings, log } = opts;
  if (!settings.proxySecret)
    throw new Error('metadata.proxy_secret (or proxy_secret_file) is required: the proxy signs who called with it');
  const upstreams = opts.upstreams?.length ? opts.upstreams : settings.proxy.upstreams;
  if (!upstreams.length) throw new Error('no upstream: pass --upstream URL or set metadata.proxy.upstreams');
  // The cluster root, when this node has one: the upstreams are then reached over verified HTTPS.
  const server = buildMetadataProxy({ upstreams, secret: settings.proxySecret, macOf: opts.macOf, log, ca: natsRootPem });
  const { host, port } = splitHostPort(opts.listen ?? settings.proxy.listen, { allowPortZero: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const url = typeof addr === 'object' && addr ? `http://${addr.address}:${addr.port}` : `http://${host}:${port}`;
  log.info({ url, upstreams }, 'metadata proxy listening');
  return { url, server, stop: () => new Promise((r) => server.close(() => r())) };
}
