/**
 * The roster's upkeep on a controller, as a hosted service: creates the bucket (with the
 * registry's replicas) and keeps this controller's own entry in it, so the first controller of a
 * cluster, admitted offline, becomes visible to the others, and a controller re-admitted with
 * other roles updates itself.
 */
import type { HostedService, Logger } from '../../core/contracts.js';
import { connectNats } from '../../core/nats.js';
import { errorMessage } from '../../core/errors.js';
import { admittedNode, type NodeCredentials } from '../../core/trust.js';
import { Roster } from './roster.js';

/** The roster service; `credentials` returns the node's own, `replicas` the bucket's replicas. */
export function rosterHostedService(credentials: () => NodeCredentials | undefined, replicas: () => number): HostedService {
  let close: (() => Promise<void>) | undefined;
  let timer: NodeJS.Timeout | undefined;
  return {
    name: 'roster',
    async start(ctx) {
      const creds = credentials();
      if (!creds) throw new Error('this node holds no credentials');
      const nc = await connectNats(ctx.natsUrl, { name: 'mammatus-roster-upkeep', persistent: true, credentials: creds });
      close = () => nc.close();
      // In the background, retried: a replicated bucket waits for the other controllers.
      const attempt = (): void => {
        ensureSelf(nc, creds, replicas(), ctx.log).catch((err: unknown) => {
          ctx.log.warn({ err: errorMessage(err) }, 'roster not writable yet; retrying');
          timer = setTimeout(attempt, 2000);
        });
      };
      attempt();
    },
    async stop() {
      clearTimeout(timer);
      await close?.().catch(() => undefined);
      close = undefined;
    },
  };
}

/** Puts this node's entry into the roster unless it is there as it should be. */
async function ensureSelf(nc: Parameters<typeof Roster.open>[0], creds: NodeCredentials, replicas: number, log: Logger): Promise<void> {
  const roster = await Roster.open(nc, replicas);
  const self = admittedNode(creds);
  const known = await roster.get(self.node);
  if (JSON.stringify(known) === JSON.stringify(self)) return;
  await roster.put(self);
  log.info({ node: self.node, roles: self.roles }, 'this controller entered the roster');
}
