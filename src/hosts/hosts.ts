/**
 * Planned hosts (issue 19) on top of the instance registry and the join secrets: what `mammatus
 * host register|rejoin|rm` and the controllers' host API change. A host is an instance record with
 * a `host` block (core/host-record.ts); its secret lives in `mammatus-joins` (joins.ts). The record
 * is written first and the secret second, so a secret never exists without its host; removing goes
 * the other way round.
 */
import type { HostArch, HostPlan, HostStep } from '../../core/host-record.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import type { RoleName } from '../../core/members.js';
import type { InstanceRegistry } from '../registry/registry.js';
import { JoinSecrets, newJoinSecret } from './joins.js';

/** How long a join secret is accepted by default: a day is time enough to rack and power a machine. */
export const DEFAULT_JOIN_TTL_MS = 24 * 3600_000;

/** What `host register` supplies. */
export interface HostInput {
  readonly name: string;
  readonly mac: string;
  readonly roles: readonly RoleName[];
  readonly arch: HostArch;
  readonly install_disk?: string;
  readonly ssh_keys?: readonly string[];
  /** How long the join secret is accepted (ms); default {@link DEFAULT_JOIN_TTL_MS}. */
  readonly ttlMs?: number;
}

/** True when a record is a planned host. */
export function isHost(r: InstanceRecord): r is InstanceRecord & { host: HostPlan } {
  return r.host !== undefined;
}

/** The host API over the registry and the secrets. */
export class Hosts {
  constructor(
    private readonly registry: InstanceRegistry,
    private readonly joins: JoinSecrets,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Records a host (`registered`) and its fresh join secret. */
  async register(input: HostInput): Promise<InstanceRecord> {
    const now = this.now();
    const expires = new Date(now.getTime() + (input.ttlMs ?? DEFAULT_JOIN_TTL_MS)).toISOString();
    const record = await this.registry.register({
      name: input.name,
      macs: [input.mac],
      ssh_keys: input.ssh_keys ?? [],
      host: {
        roles: [...input.roles],
        arch: input.arch,
        ...(input.install_disk ? { install_disk: input.install_disk } : {}),
        join_expires_at: expires,
        progress: { registered: now.toISOString() },
      },
    });
    await this.joins.put(record.id, { secret: newJoinSecret(), mac: record.macs[0], expires_at: expires });
    return record;
  }

  /**
   * A new secret for a host (its old one is spent or expired: a diskless host that rebooted, a
   * reinstall), and its progress back to `registered`.
   */
  async rejoin(idOrName: string, ttlMs = DEFAULT_JOIN_TTL_MS): Promise<InstanceRecord> {
    const now = this.now();
    const expires = new Date(now.getTime() + ttlMs).toISOString();
    const record = await this.registry.update(idOrName, (r) => {
      if (!isHost(r)) throw new Error(`${r.name} is an instance, not a planned host`);
      return { ...r, host: { ...r.host, join_expires_at: expires, progress: { registered: now.toISOString() } } };
    });
    await this.joins.put(record.id, { secret: newJoinSecret(), mac: record.macs[0], expires_at: expires });
    return record;
  }

  /** Records a step of a host's progress (a later report of the same step keeps the first time). */
  async progress(hostId: string, step: HostStep): Promise<InstanceRecord> {
    const at = this.now().toISOString();
    return this.registry.update(hostId, (r) => {
      if (!isHost(r)) throw new Error(`${r.name} is not a planned host`);
      if (r.host.progress[step]) return r;
      return { ...r, host: { ...r.host, progress: { ...r.host.progress, [step]: at } } };
    });
  }

  /** Removes a host's secret, then its record. */
  async remove(idOrName: string): Promise<InstanceRecord> {
    const r = await this.registry.get(idOrName);
    if (!isHost(r)) throw new Error(`${r.name} is an instance, not a planned host (mammatus instance delete)`);
    await this.joins.remove(r.id);
    return this.registry.remove(r.id);
  }

  /** Every planned host, sorted by name. */
  async list(): Promise<(InstanceRecord & { host: HostPlan })[]> {
    return (await this.registry.list()).filter(isHost);
  }
}
