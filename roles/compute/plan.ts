/**
 * Pure: what a compute node must do to bring LXD to what the registry records for it. Input is
 * the registry's records and LXD's instances (with state); output is an ordered list of actions,
 * the registry write-backs (real IPv4 addresses), and what LXD has that the registry does not
 * know. No I/O: `reconciler.ts` carries the plan out through the LXD client and the registry.
 *
 * An LXD instance belongs to a record when its name is the record's name and its
 * `user.mammatus.instance-id` is the record's id. Anything else on the node is reported, never
 * touched: a container someone made by hand, or one left from an older record of the same name,
 * may hold data nobody meant to destroy.
 */
import type { InstanceRecord } from '../../core/instance-record.js';
import type { ComputeConfig } from './config.js';
import type { LxdInstance, LxdInstanceCreate } from '../../src/lxd/types.js';
import { INSTANCE_NIC, renderInstanceCreate } from './preseed.js';

/** The record tag naming the image alias an instance is created from (`mammatus instance launch --image`). */
export const IMAGE_TAG = 'image';
/** The LXD config key that ties a container to its registry record. */
export const ID_KEY = 'user.mammatus.instance-id';

/** One step towards the recorded state. */
export type ComputeAction =
  | { readonly kind: 'create'; readonly name: string; readonly id: string; readonly body: LxdInstanceCreate }
  | { readonly kind: 'start'; readonly name: string; readonly id: string }
  | { readonly kind: 'stop'; readonly name: string; readonly id: string }
  /** Stop (forced) if running, delete the container, then remove the record. */
  | { readonly kind: 'destroy'; readonly name: string; readonly id: string; readonly running: boolean }
  /** The record is `deleting` and LXD has no container: only the record goes. */
  | { readonly kind: 'forget'; readonly name: string; readonly id: string };

/** A record whose `ips` should become `ips` (the instance's real addresses). */
export interface IpUpdate {
  readonly id: string;
  readonly name: string;
  readonly ips: readonly string[];
}

/** What LXD shows for one record of this node: `running`, `stopped`, … or `absent`. */
export interface ObservedStatus {
  readonly id: string;
  readonly name: string;
  readonly status: string;
}

/** Something on this node the role will not act on, with why. */
export interface ComputeProblem {
  readonly name: string;
  readonly reason: string;
}

/** The outcome of {@link planCompute}. */
export interface ComputePlan {
  readonly actions: readonly ComputeAction[];
  readonly ipUpdates: readonly IpUpdate[];
  /** The live status of every record of this node (except those being deleted), as LXD shows it. */
  readonly observed: readonly ObservedStatus[];
  /** LXD instances the registry does not know (or that belong to another record): reported only. */
  readonly unmanaged: readonly ComputeProblem[];
  /** Records for this node the role cannot act on (no image, name taken by an unmanaged container). */
  readonly problems: readonly ComputeProblem[];
}

/** The global IPv4 addresses of the instance's LAN NIC, from LXD's state (sorted). */
export function instanceIpv4(instance: LxdInstance): string[] {
  const nic = instance.state?.network?.[INSTANCE_NIC];
  return (nic?.addresses ?? [])
    .filter((a) => a.family === 'inet' && a.scope === 'global')
    .map((a) => a.address)
    .sort();
}

/** The IPs a record should hold given the instance's real IPv4s: those first, its IPv6s kept. */
export function mergedIps(recorded: readonly string[], real: readonly string[]): string[] {
  return [...real, ...recorded.filter((ip) => ip.includes(':') && !real.includes(ip))];
}

/** Plans the reconcile of node `node`. Records of other nodes and PXE hosts (no node) are ignored. */
export function planCompute(
  cfg: ComputeConfig,
  node: string,
  records: readonly InstanceRecord[],
  lxd: readonly LxdInstance[],
): ComputePlan {
  const actions: ComputeAction[] = [];
  const ipUpdates: IpUpdate[] = [];
  const problems: ComputeProblem[] = [];
  const observed: ObservedStatus[] = [];
  const byName = new Map(lxd.map((i) => [i.name, i]));
  const claimed = new Set<string>();
  const mine = records.filter((r) => r.node === node).sort((a, b) => a.name.localeCompare(b.name));
  for (const r of mine) {
    const found = byName.get(r.name);
    const owned = found !== undefined && found.config[ID_KEY] === r.id;
    if (owned) claimed.add(r.name);
    const running = owned && found.status === 'Running';
    if (r.state === 'deleting') {
      actions.push(owned ? { kind: 'destroy', name: r.name, id: r.id, running } : { kind: 'forget', name: r.name, id: r.id });
      continue;
    }
    observed.push({ id: r.id, name: r.name, status: owned ? found.status.toLowerCase() : 'absent' });
    if (found && !owned) {
      problems.push({ name: r.name, reason: `LXD already has a container ${r.name} that is not instance ${r.id}` });
      continue;
    }
    if (!found) {
      const image = r.tags[IMAGE_TAG];
      if (!image) {
        problems.push({ name: r.name, reason: `no image to create it from (tag ${IMAGE_TAG})` });
        continue;
      }
      const body = renderInstanceCreate(cfg, { name: r.name, image, mac: r.macs[0], labels: { 'instance-id': r.id } });
      actions.push({ kind: 'create', name: r.name, id: r.id, body });
    }
    if (r.state === 'running' && !running) actions.push({ kind: 'start', name: r.name, id: r.id });
    if (r.state === 'stopped' && running) actions.push({ kind: 'stop', name: r.name, id: r.id });
    if (r.state === 'running' && running) {
      const real = instanceIpv4(found);
      const ips = mergedIps(r.ips, real);
      if (real.length && ips.join(',') !== r.ips.join(',')) ipUpdates.push({ id: r.id, name: r.name, ips });
    }
  }
  const unmanaged = lxd
    .filter((i) => !claimed.has(i.name))
    .map((i) => ({
      name: i.name,
      reason: i.config[ID_KEY] ? `instance ${i.config[ID_KEY]} is not in the registry for this node` : 'not created by mammatus',
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return { actions, ipUpdates, observed, unmanaged, problems };
}
