/**
 * The registry's write API for compute nodes (node-writes.ts) and the volume API of storage and
 * compute nodes (volume-writes.ts) as a controller-hosted service: every controller answers in one
 * queue group, so the APIs survive any controller going down. The volume bucket is created here
 * (with the instance bucket's replicas), as the volume API starts watching it.
 */
import type { HostedService } from '../../core/contracts.js';
import { connectNats } from '../../core/nats.js';
import { serveNodeWrites } from './node-writes.js';
import { InstanceRegistry } from './registry.js';
import { serveVolumeRequests } from './volume-writes.js';
import { VolumeRegistry } from './volumes.js';

/** The hosted write API; `replicas` gives the registry bucket's replicas should it be created here. */
export function registryWritesHostedService(replicas: () => number): HostedService {
  let close: (() => Promise<void>) | undefined;
  return {
    name: 'registry-writes',
    async start(ctx) {
      const nc = await connectNats(ctx.natsUrl, { name: 'mammatus-registry-writes', persistent: true, credentials: ctx.credentials });
      serveNodeWrites(nc, () => InstanceRegistry.open(nc, { replicas: replicas() }), ctx.log);
      const volumes = serveVolumeRequests(nc, () => VolumeRegistry.open(nc, { replicas: replicas() }), ctx.log);
      close = () => {
        volumes.close();
        return nc.drain();
      };
    },
    async stop() {
      await close?.().catch(() => undefined);
      close = undefined;
    },
  };
}
