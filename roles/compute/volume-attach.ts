/**
 * One pass of the compute node's volume work (issue 18): the volumes attached to its instances
 * (from `openAttachedVolumeFeed`) made real. The order matters, so it is here and not left to
 * the caller:
 *
 * 1. LXD first for what goes away: a `mammatus-vol-*` device whose volume is no longer attached to
 *    that instance is removed, so no container holds a disk whose session is about to end.
 * 2. open-iscsi (`iscsi-apply.ts`): records and logins of the attached volumes, logout and record
 *    delete of the others — except a volume whose device removal failed in step 1: its session
 *    stays until the next pass.
 * 3. LXD again: each volume that is logged in and has its by-path device gets (or keeps) its device.
 *    Nothing is removed in this step, so a volume whose login failed this time keeps its device.
 *
 * Only instances mammatus created (`user.mammatus.instance-id` set) are given devices; an
 * operator's container of the same name is reported, never touched. Failures are per volume.
 */
import { isIPv4 } from 'node:net';
import type { FileOps, Member, Run } from '../../core/contracts.js';
import { actsAs } from '../../core/members.js';
import { errorMessage } from '../../core/errors.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import type { LxdClient } from '../../src/lxd/client.js';
import type { LxdInstance } from '../../src/lxd/types.js';
import { applyIscsiPlan, readIscsiState, type IscsiFailure } from './iscsi-apply.js';
import { planIscsi, type IscsiAttachment, type IscsiPlan } from './iscsi-plan.js';
import { instanceVolumeDevices, volumeDeviceName, volumeDevicesPut } from './lxd-volume.js';
import { ID_KEY } from './plan.js';
import { ensureFilesystem, type FormatDeps } from './volume-format.js';

/** What a pass needs. */
export interface VolumePassDeps {
  readonly lxd: Pick<LxdClient, 'listInstances' | 'getInstance' | 'updateInstance'>;
  readonly run: Run;
  readonly files: FileOps;
  /** This node's Serf name. */
  readonly node: string;
  /** Storage node → portal IPv4 ({@link storagePortals} of the Serf members). */
  readonly portals: ReadonlyMap<string, string>;
  readonly deviceExists?: (path: string) => Promise<boolean>;
  readonly deviceWaitMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Bytes of a device, for the blank check before formatting (tests). */
  readonly readRange?: FormatDeps['readRange'];
}

/** What a pass did; the role's status detail for volumes. */
export interface VolumePassReport {
  /** Volumes whose device is in their instance, as `volume→instance`. */
  readonly attached: readonly string[];
  readonly waiting: readonly { readonly volume: string; readonly reason: string }[];
  readonly failed: readonly { readonly volume: string; readonly error: string }[];
  /** Steps and LXD changes that changed something (`login data`, `lxd web1`). */
  readonly done: readonly string[];
}

/**
 * The portal of every alive storage node: its Serf address when that is IPv4 (the storage role's
 * default `roles.storage.portal`). A storage node with another `portal` set is not reachable this
 * way until the volume record carries its portal (see docs/storage.md, "The compute side").
 */
export function storagePortals(members: readonly Member[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of members) if (m.status === 'alive' && actsAs(m, 'storage') && isIPv4(m.addr)) out.set(m.name, m.addr);
  return out;
}

const attachedHere = (volumes: readonly VolumeRecord[], node: string) =>
  volumes.filter((v) => v.attached?.node === node && v.state !== 'deleting');

/** Runs one pass; never throws (an unreadable LXD or iscsiadm fails every volume with its reason). */
export async function volumePass(volumes: readonly VolumeRecord[], deps: VolumePassDeps): Promise<VolumePassReport> {
  const done: string[] = [];
  const failed: { volume: string; error: string }[] = [];
  const mine = attachedHere(volumes, deps.node);
  let instances: LxdInstance[];
  let plan: IscsiPlan;
  try {
    instances = await deps.lxd.listInstances(false);
    plan = planIscsi({ node: deps.node, volumes, portals: deps.portals, state: await readIscsiState(deps.run) });
  } catch (err) {
    const error = errorMessage(err);
    return { attached: [], waiting: [], failed: mine.map((v) => ({ volume: v.name, error })), done };
  }
  const wantedOn = (instance: string) => new Set(mine.filter((v) => v.attached!.instance === instance).map((v) => v.name));

  // 1. Devices go first when their volume is no longer attached to that instance, or when it is
  // about to come from another device (its storage node's portal moved): the session under a
  // mounted device must not end before LXD let go of it.
  const planned = new Map(plan.attach.map((a) => [`${a.instance} ${a.volume}`, a.device]));
  const inUse = new Set<string>();
  for (const i of instances) {
    const stale = Object.entries(instanceVolumeDevices(i))
      .filter(([v, d]) => !wantedOn(i.name).has(v) || (planned.get(`${i.name} ${v}`) ?? d.source) !== d.source)
      .map(([v]) => v);
    if (!stale.length) continue;
    const keep = new Set([...wantedOn(i.name)].filter((v) => !stale.includes(v)));
    try {
      await putDevices(deps, i.name, (fresh) => volumeDevicesPut(fresh, [], keep));
      done.push(`lxd ${i.name}`);
    } catch (err) {
      for (const v of stale) {
        inUse.add(v);
        failed.push({ volume: v, error: `cannot remove it from ${i.name}: ${errorMessage(err)}` });
      }
    }
  }

  // 2. open-iscsi, keeping the sessions of volumes still in a container.
  const steps = plan.steps.filter((s) => !((s.kind === 'logout' || s.kind === 'delete') && inUse.has(s.volume)));
  const iscsi = await applyIscsiPlan({ ...plan, steps }, deps);
  done.push(...iscsi.done);
  failed.push(...iscsi.failed.map((f: IscsiFailure) => ({ volume: f.volume, error: `${f.step}: ${f.error}` })));

  // 3. Devices of the volumes that are ready; nothing removed here.
  const attached: string[] = [];
  const waiting = [...plan.waiting];
  const byName = new Map(instances.map((i) => [i.name, i]));
  for (const name of [...new Set(iscsi.ready.map((a) => a.instance))].sort()) {
    const found = byName.get(name);
    if (!found || !found.config[ID_KEY]) {
      const reason = found ? `${name} was not created by mammatus: not touched` : `instance ${name} does not exist on this node yet`;
      waiting.push(...iscsi.ready.filter((a) => a.instance === name).map((a) => ({ volume: a.volume, reason })));
      continue;
    }
    const ready: IscsiAttachment[] = [];
    for (const a of iscsi.ready.filter((x) => x.instance === name)) {
      // A mount point needs a filesystem; checked before the device first goes into the instance.
      const mounted = found.devices[volumeDeviceName(a.volume)]?.source === a.device;
      try {
        if (a.path !== undefined && !mounted && (await ensureFilesystem(a.device, a.volume, deps)) === 'made')
          done.push(`mkfs ${a.volume}`);
        ready.push(a);
      } catch (err) {
        failed.push({ volume: a.volume, error: `cannot mount it at ${a.path}: ${errorMessage(err)}` });
      }
    }
    if (!ready.length) continue;
    const keep = new Set([...wantedOn(name)].filter((v) => !ready.some((a) => a.volume === v)));
    try {
      if (await putDevices(deps, name, (fresh) => volumeDevicesPut(fresh, ready, keep))) done.push(`lxd ${name}`);
      attached.push(...ready.map((a) => `${a.volume}→${name}`));
    } catch (err) {
      failed.push(...ready.map((a) => ({ volume: a.volume, error: `cannot add it to ${name}: ${errorMessage(err)}` })));
    }
  }
  return { attached: attached.sort(), waiting, failed, done };
}

/** Reads the instance with its ETag and PUTs the change, if any; true when it changed something. */
async function putDevices(
  deps: VolumePassDeps,
  name: string,
  change: (fresh: LxdInstance) => ReturnType<typeof volumeDevicesPut>,
): Promise<boolean> {
  const { value, etag } = await deps.lxd.getInstance(name);
  const put = change(value);
  if (!put) return false;
  await deps.lxd.updateInstance(name, put, { etag });
  return true;
}
