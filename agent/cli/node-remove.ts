/**
 * `mammatus node remove NAME [USER@HOST] [--purge]`, on a controller: with a host, stops the node's
 * agent and Serf over SSH (Serf leaves the cluster on SIGINT) and with `--purge` also purges
 * mammatus-agent and deletes what `node add` wrote (credentials, configs, the apt source); then
 * revokes the node in the roster (every controller refuses its connections within seconds) and
 * has Serf force it out (`force-leave`, for a node that is gone or cannot be reached).
 */
import { errorMessage } from '../../core/errors.js';
import { connect, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { controllerCredentials, revokeNode } from './node.js';
import { NODE_PATHS } from './node-plan.js';
import { daemonFiles } from './node-host.js';
import { connectHost, must, stopServices, type SshFlags } from './node-remote.js';
import { StepRunner } from './node-steps.js';

/** Flags of `node remove`. */
export interface NodeRemoveOptions extends SshFlags {
  purge?: boolean;
  nats?: string;
  json?: boolean;
}

/** Everything `node add` puts on a host besides the packages (purged with `--purge`). */
export const PURGED_PATHS = [
  NODE_PATHS.credentials,
  NODE_PATHS.authority,
  NODE_PATHS.serfConfig,
  NODE_PATHS.serfTags,
  NODE_PATHS.agentConfig,
  NODE_PATHS.aptSources,
  '/etc/apt/keyrings/mammatus.asc',
  '/etc/apt/keyrings/mammatus.gpg',
  daemonFiles('serf').pid,
  daemonFiles('agent').pid,
] as const;

/** `mammatus node remove NAME [USER@HOST] [--purge]` */
export async function nodeRemoveCommand(
  g: GlobalOptions,
  name: string,
  hostArg: string | undefined,
  o: NodeRemoveOptions,
  io: CliIo,
  env = process.env,
): Promise<number> {
  if (o.purge && !hostArg) throw new UsageError('--purge needs the host: node remove NAME [USER@]HOST --purge');
  const own = await controllerCredentials(g, 'remove nodes', io);
  if (!own) return 1;
  const steps = new StepRunner(hostArg ? 3 : 2, io, Boolean(o.json));
  try {
    if (hostArg) {
      await steps.run(o.purge ? 'purge' : 'stop', async () => {
        const host = await connectHost(hostArg, o, env);
        try {
          const done = await stopServices(host);
          if (o.purge) {
            await must(host, ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'purge', '-y', 'mammatus-agent'], 600_000);
            await must(host, ['rm', '-f', '--', ...PURGED_PATHS]);
            done.push('purged mammatus-agent and its credentials and configs');
          }
          return { changed: done.length > 0, what: done.join(', ') || 'nothing was running' };
        } finally {
          await host.close().catch(() => undefined);
        }
      });
    }
    await steps.run('revoke', async () => {
      const had = await revokeNode(g, o.nats, own, name);
      return { changed: had, what: had ? `${name} removed from the roster` : `${name} is not in the roster` };
    });
    await steps.run('leave', async () => {
      const client = await connect(g);
      try {
        const member = (await client.members()).find((m) => m.name === name);
        if (!member || member.status === 'left')
          return { changed: false, what: member ? `${name} has left Serf` : `${name} is not a member` };
        await client.forceLeave(name).catch((err: unknown) => {
          throw new Error(`serf force-leave ${name}: ${errorMessage(err)}`);
        });
        return { changed: true, what: `${name} forced out of Serf (was ${member.status})` };
      } finally {
        client.close();
      }
    });
  } catch (err) {
    steps.fail(err);
    return 1;
  }
  steps.summary(name, steps.anyChanged() ? `removed ${name}` : `${name}: nothing to change`);
  return 0;
}
