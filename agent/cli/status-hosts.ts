/**
 * `mammatus status --hosts`: the planned bare-metal hosts that are not members yet, with how far
 * each got, below the member table. Read from the registry (NATS), so only when asked: a plain
 * `status` stays a Serf query.
 */
import { lastStep } from '../../core/host-record.js';
import { connectNats } from '../../core/nats.js';
import { errorMessage } from '../../core/errors.js';
import { isHost } from '../../src/hosts/hosts.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import type { GlobalOptions } from './common.js';
import { cliCredentials } from './credentials.js';
import { hostProgress } from './host-progress.js';
import { resolveNatsServers } from './instance.js';

/** One planned host as status shows it. */
export interface PlannedHostRow {
  readonly name: string;
  readonly mac: string;
  readonly roles: readonly string[];
  readonly progress: string;
  readonly since?: string;
}

/** The planned hosts and their progress (`ok` once alive in `members`); throws when the registry cannot be read. */
export async function plannedHosts(
  g: GlobalOptions,
  nats: string | undefined,
  members: ReadonlyMap<string, string>,
): Promise<PlannedHostRow[]> {
  const servers = await resolveNatsServers(g, nats);
  const nc = await connectNats(servers, { name: 'mammatus-cli', timeoutMs: 3000, credentials: await cliCredentials(g) });
  try {
    const registry = await InstanceRegistry.open(nc, { bind: true });
    return (await registry.list()).filter(isHost).map((r) => ({
      name: r.name,
      mac: r.macs[0],
      roles: r.host.roles,
      progress: hostProgress(r, members),
      ...(lastStep(r.host) ? { since: lastStep(r.host)!.at } : {}),
    }));
  } finally {
    await nc.close();
  }
}

/** The lines status prints for them: a header and one line per host, or why they cannot be read. */
export async function plannedHostLines(
  g: GlobalOptions,
  nats: string | undefined,
  members: ReadonlyMap<string, string>,
): Promise<string[]> {
  try {
    const rows = await plannedHosts(g, nats, members);
    if (!rows.length) return ['planned hosts: none'];
    return [
      'planned hosts:',
      ...rows.map(
        (h) => `  ${h.name} (${h.mac}, ${h.roles.join(',')}): ${h.progress}${h.since && h.progress !== 'ok' ? ` since ${h.since}` : ''}`,
      ),
    ];
  } catch (err) {
    return [`  ! planned hosts: cannot read the registry: ${errorMessage(err)}`];
  }
}
