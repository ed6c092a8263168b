/**
 * The metadata service as a controller-hosted service: the controller role starts it once its
 * nats-server is ready and tells it about membership, from which vendor-data takes the controller
 * addresses (Consul's join list, InfluxDB's host).
 */
import { readFileSync } from 'node:fs';
import type { Member } from '../../core/contracts.js';
import type { HostedService } from '../../core/contracts.js';
import { parseRoleTag } from '../../core/members.js';
import { parseMetadataSettings } from './config.js';
import { startMetadataService, type RunningMetadataService } from './service.js';
import { buildVendorDataSource } from './vendor-source.js';

/** Addresses of the alive members carrying the controller role, sorted. */
export function controllerAddresses(members: readonly Member[]): string[] {
  return members
    .filter((m) => m.status === 'alive' && m.tags.role !== undefined && parseRoleTag(m.tags.role).roles.includes('controller'))
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
      const settings = parseMetadataSettings(section(), (p) => readFileSync(p, 'utf8'));
      controllers = controllerAddresses(ctx.members);
      const vendorData = await buildVendorDataSource({ settings, controllers: () => controllers, log: ctx.log });
      running = await startMetadataService({ settings, nats: ctx.natsUrl, vendorData, log: ctx.log });
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
