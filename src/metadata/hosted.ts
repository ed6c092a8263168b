/**
 * The metadata service as a controller-hosted service: the controller role starts it once its
 * nats-server is ready and tells it about membership, from which vendor-data takes the controller
 * addresses (Consul's join list, InfluxDB's host). The service's modules are loaded at its start.
 */
import { readSecretFileSync } from '../../core/files.js';
import type { HostedService, Member } from '../../core/contracts.js';
import { aliveWithRole } from '../../core/members.js';
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
export function metadataHostedService(section: () => unknown): HostedService {
  let running: RunningMetadataService | undefined;
  let controllers: string[] = [];
  return {
    name: 'metadata',
    configKey: () => JSON.stringify(section() ?? null),
    async start(ctx) {
      const [{ parseMetadataSettings }, { startMetadataService }, { buildVendorDataSource }] = await Promise.all([
        import('./config.js'),
        import('./service.js'),
        import('./vendor-source.js'),
      ]);
      const settings = parseMetadataSettings(section(), readSecretFileSync);
      controllers = controllerAddresses(ctx.members);
      const vendorData = await buildVendorDataSource({ settings, controllers: () => controllers, log: ctx.log });
      running = await startMetadataService({ settings, nats: ctx.natsUrl, vendorData, log: ctx.log, credentials: ctx.credentials });
    },
    membersChanged(members) {
      controllers = controllerAddresses(members);
    },
    async stop() {
      await running?.stop();
      running = undefined;
    },
  };
}
