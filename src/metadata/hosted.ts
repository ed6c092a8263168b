/**
 * The metadata service as a controller-hosted service: the controller role starts it once its
 * nats-server is ready and tells it about membership, from which vendor-data takes the controller
 * addresses (Consul's join list) and those of the controllers whose metrics store is InfluxDB
 * (Telegraf's outputs). The service's modules are loaded at its start.
 *
 * In the agent it runs as a child process under the unprivileged service user
 * (core/child-service.ts): the agent reads the secret file and Vault's token here, as root, and
 * sends them with the section; the child reads no file that holds a secret.
 */
import { readFileSync } from 'node:fs';
import { readSecretFileSync } from '../../core/files.js';
import type { HostedService, HostedServiceContext, Member } from '../../core/contracts.js';
import { ChildService, exportChildMetrics, serviceArgv, type ChildInit, type ChildWiring } from '../../core/child-service.js';
import { aliveWithRole } from '../../core/members.js';
import { influxdbControllers } from '../../core/telegraf.js';
import { forwardNatsRoot, natsCaField } from '../../core/nats.js';
import { forwardNodeTls, nodeTlsField } from '../../core/node-tls.js';
import type { RunningMetadataService } from './service.js';

/** Addresses of the alive members carrying the controller role, sorted. */
export function controllerAddresses(members: readonly Member[]): string[] {
  return aliveWithRole(members, 'controller')
    .map((m) => m.addr)
    .sort();
}

/**
 * The hosted metadata service. `section` returns the agent config's current `metadata:` section,
 * read at each start; after a config reload that changed it, the role restarts the service.
 */
export function metadataHostedService(section: () => unknown, child?: ChildWiring): HostedService {
  if (child) return metadataChild(section, child);
  let running: RunningMetadataService | undefined;
  let controllers: string[] = [];
  let influxdb: string[] = [];
  return {
    name: 'metadata',
    configKey: () => JSON.stringify(section() ?? null),
    async start(ctx) {
      const [{ parseMetadataSettings }, { startMetadataService }, { buildVendorDataSource }, { caRootCache, natsCaFetch }] =
        await Promise.all([import('./config.js'), import('./service.js'), import('./vendor-source.js'), import('./vendor-data-root.js')]);
      const settings = parseMetadataSettings(section(), readSecretFileSync);
      controllers = controllerAddresses(ctx.members);
      influxdb = influxdbControllers(ctx.members);
      // The cluster CA's root for vendor-data (issue 20), read from mammatus-ca.
      const caRoot = caRootCache({ fetch: natsCaFetch(ctx.natsUrl, ctx.credentials), log: ctx.log });
      const vendorData = await buildVendorDataSource({
        settings,
        controllers: () => controllers,
        influxdb: () => influxdb,
        log: ctx.log,
        caRoot,
      });
      running = await startMetadataService({ settings, nats: ctx.natsUrl, vendorData, log: ctx.log, credentials: ctx.credentials });
    },
    membersChanged(members) {
      controllers = controllerAddresses(members);
      influxdb = influxdbControllers(members);
    },
    async stop() {
      await running?.stop();
      running = undefined;
    },
  };
}

/**
 * The child's first message: the section with the secret itself in place of `proxy_secret_file`,
 * Vault's token, the NATS URL and seed. Reads those files (as root) and checks the section, so a
 * bad config fails the start here, before any process is spawned.
 */
export async function metadataChildInit(
  raw: unknown,
  ctx: Omit<HostedServiceContext, 'log' | 'members'>,
  level: string,
): Promise<ChildInit> {
  const [{ parseMetadataSettings }, { parseVendorDataSettings, loadVendorDataTemplates }] = await Promise.all([
    import('./config.js'),
    import('./vendor-data.js'),
  ]);
  const settings = parseMetadataSettings(raw, readSecretFileSync);
  const { vault } = parseVendorDataSettings(settings.vendorData);
  const vaultToken = vault.enabled && vault.token_file ? readFileSync(vault.token_file, 'utf8').trim() : undefined;
  // Found and read here, beside the agent's program: the child may run a staged copy of the program
  // (core/program-stage.ts) with no templates beside it, or lack access to the repository's copy.
  const templates = await loadVendorDataTemplates();
  const { proxy_secret_file: _file, ...rest } = (raw ?? {}) as Record<string, unknown>;
  void _file;
  return {
    type: 'init',
    service: 'metadata',
    level,
    section: { ...rest, ...(settings.proxySecret ? { proxy_secret: settings.proxySecret.toString('hex') } : {}) },
    natsUrl: ctx.natsUrl,
    ...(ctx.credentials ? { seed: ctx.credentials.seed } : {}),
    ...(vaultToken === undefined ? {} : { vaultToken }),
    templates,
  };
}

/** The hosted metadata service as a supervised child process. */
function metadataChild(section: () => unknown, w: ChildWiring): HostedService {
  let child: ChildService | undefined;
  let unforward: (() => void) | undefined;
  let unexport: (() => void) | undefined;
  let controllers: string[] = [];
  let influxdb: string[] = [];
  return {
    name: 'metadata',
    configKey: () => JSON.stringify(section() ?? null),
    async start(ctx) {
      const init = await metadataChildInit(section(), ctx, w.level());
      controllers = controllerAddresses(ctx.members);
      influxdb = influxdbControllers(ctx.members);
      const spawn = await w.spawn();
      child = new ChildService({ spawn, log: ctx.log, name: 'metadata', argv: serviceArgv(w.mammatus, 'metadata'), user: w.user() });
      // A restart after a crash gets the controllers of that moment.
      // The NATS root read at each (re)start: a child started before the first certificate gets it at its next start.
      await child.start(() => ({ ...init, controllers, influxdb, ...natsCaField(), ...nodeTlsField() }));
      // A renewal may bring a new root (the first certificate, a root rotation): the child takes it at once.
      unforward?.();
      const stopRoot = forwardNatsRoot((m) => void child?.send(m));
      const stopCert = forwardNodeTls((m) => void child?.send(m));
      unforward = () => {
        stopRoot();
        stopCert();
      };
      // The child's own registry joins the agent's scrape (in-process, its metrics are in the agent's already).
      unexport?.();
      unexport = exportChildMetrics('metadata', child);
    },
    membersChanged(members) {
      controllers = controllerAddresses(members);
      influxdb = influxdbControllers(members);
      child?.send({ type: 'members', controllers, influxdb });
    },
    async stop() {
      unexport?.();
      unexport = undefined;
      unforward?.();
      unforward = undefined;
      await child?.stop();
      child = undefined;
    },
  };
}
