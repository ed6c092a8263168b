/**
 * `mammatus node remove NAME [USER@HOST] [--purge]`, on a controller: first revokes the node in the
 * roster (every controller refuses its connections within seconds) and has Serf force it out
 * (`force-leave`, for a node that is gone); then, with a host, and only once the host's own
 * credentials (or Serf config) say it is NAME, stops the node's agent and Serf over SSH (Serf
 * leaves the cluster on SIGINT) and with `--purge` also purges mammatus-agent and deletes what
 * `node add` wrote. Revoking first: a dead, stolen or unreachable host is still revoked, and the
 * SSH failure is reported on its own.
 */
import type { RemoteHost } from '../../core/ssh-remote.js';
import { errorMessage } from '../../core/errors.js';
import { connect, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { controllerCredentials, revokeNode } from './node.js';
import { NODE_PATHS } from './node-plan.js';
import { daemonFiles } from './node-host.js';
import { hostNodeName } from './node-names.js';
import { connectHost, must, readRemote, sshTarget, stopServices, type SshFlags } from './node-remote.js';
import { StepRunner, type StepOutcome } from './node-steps.js';

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

/** The effects of `node remove` beyond the host's SSH session (tests pass fakes). */
export interface RemoveDeps {
  connect(hostArg: string, o: SshFlags, env: NodeJS.ProcessEnv): Promise<RemoteHost>;
  /** Removes the node from the roster; false when it was not there. */
  revoke(name: string): Promise<boolean>;
  /** Has Serf force the node out. */
  leave(name: string): Promise<StepOutcome>;
}

/** `mammatus node remove NAME [USER@HOST] [--purge]` */
export async function nodeRemoveCommand(
  g: GlobalOptions,
  name: string,
  hostArg: string | undefined,
  o: NodeRemoveOptions,
  io: CliIo,
  env = process.env,
  deps: Partial<RemoveDeps> = {},
): Promise<number> {
  if (o.purge && !hostArg) throw new UsageError('--purge needs the host: node remove NAME [USER@]HOST --purge');
  if (hostArg) sshTarget(hostArg, o); // a malformed target is a usage error before anything is revoked
  const own = await controllerCredentials(g, 'remove nodes', io);
  if (!own) return 1;
  const d: RemoveDeps = {
    connect: connectHost,
    revoke: (n) => revokeNode(g, o.nats, own, n),
    leave: (n) => forceLeave(g, n),
    ...deps,
  };
  const steps = new StepRunner(hostArg ? 3 : 2, io, Boolean(o.json));
  let revoked = false;
  try {
    await steps.run('revoke', async () => {
      const had = await d.revoke(name);
      revoked = true;
      return { changed: had, what: had ? `${name} removed from the roster` : `${name} is not in the roster` };
    });
    await steps.run('leave', () => d.leave(name));
    if (hostArg) await steps.run(o.purge ? 'purge' : 'stop', () => stopOnHost(d, name, hostArg, o, env));
  } catch (err) {
    steps.fail(revoked ? new Error(`${errorMessage(err)}. ${name} IS revoked: every controller refuses it`) : err);
    return 1;
  }
  steps.summary(name, steps.anyChanged() ? `removed ${name}` : `${name}: nothing to change`);
  return 0;
}

/** Stops (and with `--purge` purges) the node on its host, once the host says it is `name`. */
async function stopOnHost(
  d: RemoveDeps,
  name: string,
  hostArg: string,
  o: NodeRemoveOptions,
  env: NodeJS.ProcessEnv,
): Promise<StepOutcome> {
  const host = await d.connect(hostArg, o, env);
  try {
    // Never stop or purge another node: `node remove web1 <web2's address> --purge` must not touch web2.
    const is = hostNodeName(await readRemote(host, NODE_PATHS.credentials), await readRemote(host, NODE_PATHS.serfConfig));
    if (is !== name)
      throw new Error(
        is
          ? `${hostArg} is node ${is}, not ${name}: nothing stopped or purged there`
          : `cannot tell which node ${hostArg} is (neither ${NODE_PATHS.credentials} nor ${NODE_PATHS.serfConfig} names one): nothing stopped or purged there`,
      );
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
}

/** `serf force-leave` of a member that has not left (one that is gone or cannot be reached). */
async function forceLeave(g: GlobalOptions, name: string): Promise<StepOutcome> {
  const client = await connect(g);
  try {
    const member = (await client.members()).find((m) => m.name === name);
    if (!member || member.status === 'left') return { changed: false, what: member ? `${name} has left Serf` : `${name} is not a member` };
    await client.forceLeave(name).catch((err: unknown) => {
      throw new Error(`serf force-leave ${name}: ${errorMessage(err)}`);
    });
    return { changed: true, what: `${name} forced out of Serf (was ${member.status})` };
  } finally {
    client.close();
  }
}
