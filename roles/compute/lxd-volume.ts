/**
 * Pure: the LXD side of a volume attachment (issue 18). A logged-in volume becomes one device of
 * its instance, named `mammatus-vol-<volume>`: a `disk` device (LXD mounts the filesystem on the
 * block device at `path`) when the attachment asks for a mount point, else a `unix-block` device
 * (the raw disk at `/dev/mammatus/<volume>` inside the instance). Detaching removes the device.
 *
 * Expressed as the `PUT /1.0/instances/<name>` body (`LxdClient.updateInstance`, sent with the
 * ETag it was read with): LXD's PATCH merges devices by name and so can add but never remove one.
 * Devices whose names do not start with `mammatus-vol-` are copied unchanged; LXD hot-plugs
 * both device types into a running container.
 */
import type { LxdDevice, LxdInstance, LxdInstancePut } from '../../src/lxd/types.js';
import type { IscsiAttachment } from './iscsi-plan.js';

/** Every volume device of an instance is named with this prefix; the rest of its devices are not the role's. */
export const VOLUME_DEVICE_PREFIX = 'mammatus-vol-';

/** The device name of volume `volume`. */
export function volumeDeviceName(volume: string): string {
  return `${VOLUME_DEVICE_PREFIX}${volume}`;
}

/** The LXD device for one attachment. */
export function renderVolumeDevice(a: Pick<IscsiAttachment, 'volume' | 'device' | 'path'>): LxdDevice {
  return a.path !== undefined
    ? { type: 'disk', source: a.device, path: a.path }
    : { type: 'unix-block', source: a.device, path: `/dev/mammatus/${a.volume}` };
}

/**
 * The PUT body that gives `instance` exactly the volume devices of `attachments` (those naming
 * other instances are ignored), or undefined when it has them already. `keep` names volumes whose
 * device stays as it is whatever it is (attached, but their iSCSI state cannot be planned now).
 */
export function volumeDevicesPut(
  instance: LxdInstance,
  attachments: readonly IscsiAttachment[],
  keep: ReadonlySet<string> = new Set(),
): LxdInstancePut | undefined {
  const devices: Record<string, LxdDevice> = {};
  for (const [name, dev] of Object.entries(instance.devices ?? {})) {
    const volume = name.startsWith(VOLUME_DEVICE_PREFIX) ? name.slice(VOLUME_DEVICE_PREFIX.length) : undefined;
    if (volume === undefined || keep.has(volume)) devices[name] = dev;
  }
  for (const a of attachments) if (a.instance === instance.name) devices[volumeDeviceName(a.volume)] = renderVolumeDevice(a);
  if (sameDevices(instance.devices ?? {}, devices)) return undefined;
  return {
    ...(instance.architecture !== undefined ? { architecture: instance.architecture } : {}),
    config: instance.config,
    devices,
    ...(instance.ephemeral !== undefined ? { ephemeral: instance.ephemeral } : {}),
    profiles: instance.profiles,
    ...(instance.description !== undefined ? { description: instance.description } : {}),
  };
}

/** The volume devices `instance` has (volume → device), to say what is attached in status. */
export function instanceVolumeDevices(instance: LxdInstance): Record<string, LxdDevice> {
  const out: Record<string, LxdDevice> = {};
  for (const [name, dev] of Object.entries(instance.devices ?? {})) {
    if (name.startsWith(VOLUME_DEVICE_PREFIX)) out[name.slice(VOLUME_DEVICE_PREFIX.length)] = dev;
  }
  return out;
}

function sameDevices(a: Readonly<Record<string, LxdDevice>>, b: Readonly<Record<string, LxdDevice>>): boolean {
  const canon = (d: Readonly<Record<string, LxdDevice>>) =>
    JSON.stringify(
      Object.keys(d)
        .sort()
        .map((k) => [k, Object.entries(d[k]).sort(([x], [y]) => x.localeCompare(y))]),
    );
  return canon(a) === canon(b);
}
