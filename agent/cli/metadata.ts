/**
 * `mammatus metadata serve|proxy`: the metadata service and the gateway's proxy, run on their own
 * (development, tests, or a host outside the agent). Both read the `metadata:` section of the agent
 * config and run until SIGTERM/SIGINT.
 */
import { readSecretFileSync } from '../../core/files.js';
import { isHostPort } from '../../core/net.js';
import { loadConfig } from '../config/load.js';
import { buildLogger } from '../../core/logger.js';
import { parseMetadataSettings, type MetadataSettings } from '../../src/metadata/config.js';
import { startMetadataProxy, startMetadataService } from '../../src/metadata/service.js';
import { leaseFileLookup } from '../../roles/gateway/leases.js';
import { buildVendorDataSource } from '../../src/metadata/vendor-source.js';
import { UsageError, type CliIo, type GlobalOptions } from './common.js';
import { cliCredentials } from './credentials.js';
import { untilSignal } from '../../core/signals.js';

/** Flags of `metadata serve`. */
export interface ServeOptions {
  nats?: string;
  listen?: string;
  config?: string;
}

/** Flags of `metadata proxy`. */
export interface ProxyOptions {
  upstream?: string[];
  listen?: string;
  config?: string;
  leases?: string;
}

async function settingsFrom(
  configPath: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<{ settings: MetadataSettings; level: string }> {
  const loaded = await loadConfig({ path: configPath, env });
  return { settings: parseMetadataSettings(loaded.config.metadata, readSecretFileSync), level: loaded.config.log.level };
}

function checkListen(listen: string | undefined): void {
  if (listen !== undefined && !isHostPort(listen)) throw new UsageError(`--listen must be host:port, got "${listen}"`);
}

/** `metadata serve`: runs the service until a stop signal. */
export async function serveCommand(g: GlobalOptions, opts: ServeOptions, io: CliIo, env: NodeJS.ProcessEnv): Promise<number> {
  checkListen(opts.listen);
  const { settings, level } = await settingsFrom(opts.config, env);
  const log = buildLogger(level as 'info').child({ component: 'metadata' });
  const vendorData = await buildVendorDataSource({ settings, controllers: () => [], log });
  const service = await startMetadataService({
    settings,
    ...(opts.nats ? { nats: opts.nats } : {}),
    ...(opts.listen ? { listen: opts.listen } : {}),
    vendorData,
    log,
    credentials: await cliCredentials(g),
  });
  io.err(`metadata service on ${service.url}`);
  const signal = await untilSignal();
  log.info({ signal }, 'stopping');
  await service.stop();
  return 0;
}

/** `metadata proxy`: runs the proxy until a stop signal. */
export async function proxyCommand(opts: ProxyOptions, io: CliIo, env: NodeJS.ProcessEnv): Promise<number> {
  checkListen(opts.listen);
  for (const u of opts.upstream ?? [])
    if (!/^https?:\/\/[^\s]+$/.test(u)) throw new UsageError(`--upstream must be an http:// URL, got "${u}"`);
  const { settings, level } = await settingsFrom(opts.config, env);
  const log = buildLogger(level as 'info').child({ component: 'metadata-proxy' });
  // Callers' MACs come from the gateway's DHCP leases (dnsmasq's lease file).
  const leasesFile = opts.leases ?? settings.proxy.leasesFile;
  const proxy = await startMetadataProxy({
    settings,
    ...(opts.upstream ? { upstreams: opts.upstream } : {}),
    ...(opts.listen ? { listen: opts.listen } : {}),
    macOf: leaseFileLookup(leasesFile),
    log,
  });
  log.info({ leases: leasesFile }, 'callers identified by their DHCP leases');
  io.err(`metadata proxy on ${proxy.url}`);
  const signal = await untilSignal();
  log.info({ signal }, 'stopping');
  await proxy.stop();
  return 0;
}
