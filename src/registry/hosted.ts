/**
 * The registry's write API for compute nodes (node-writes.ts) as a controller-hosted service: every
 * controller answers in one queue group, so the API survives any controller going down.
 */
import type { HostedService } from '../../core/contracts.js';
import { connectNats } from '../../core/nats.js';
import { serveNodeWrites } from './node-writes.js';
import { InstanceRegistry } from './registry.js';

/** The hosted write API; `replicas` gives the registry bucket's replicas should it be created here. */
export function registryWritesHostedService(replicas: () => number): HostedService {
  let close: (() => Promise<void>) | undefined;
  return {
    name: 'registry-writes',
    async start(ctx) {
      const nc = await connectNats(ctx.natsUrl, { name: 'mammatus-registry-writes', persistent: true, credentials: ctx.credentials });
      close = () => nc.drain();
      serveNodeWrites(nc, () => InstanceRegistry.open(nc, { replicas: replicas() }), ctx.log);
    },
    async stop() {
      await close?.().catch(() => undefined);
      close = undefined;
    },
  };
}
