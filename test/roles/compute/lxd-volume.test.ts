/** The LXD side of a volume attachment: the instance PUT body that adds or removes `mammatus-vol-*` devices. */
import { describe, expect, it } from 'vitest';
import type { LxdInstance } from '../../../src/lxd/types.js';
import { instanceVolumeDevices, renderVolumeDevice, volumeDeviceName, volumeDevicesPut } from '../../../roles/compute/lxd-volume.js';

const DEV = '/dev/disk/by-path/ip-10.88.0.31:3260-iscsi-iqn.2026-12.mammatus:volume.data-lun-1';

function instance(devices: LxdInstance['devices']): LxdInstance {
  return {
    name: 'web1',
    type: 'container',
    status: 'Running',
    status_code: 103,
    architecture: 'x86_64',
    config: { 'user.mammatus.instance-id': 'i-1', 'volatile.eth0.hwaddr': '02:00:00:00:00:01' },
    devices,
    ephemeral: false,
    profiles: ['default', 'lan'],
    description: 'kept',
  };
}

describe('lxd-volume', () => {
  it('a mount path gives a disk device, none a unix-block device', () => {
    expect(volumeDeviceName('data')).toBe('mammatus-vol-data');
    expect(renderVolumeDevice({ volume: 'data', device: DEV, path: '/mnt/data' })).toEqual({
      type: 'disk',
      source: DEV,
      path: '/mnt/data',
    });
    expect(renderVolumeDevice({ volume: 'data', device: DEV })).toEqual({ type: 'unix-block', source: DEV, path: '/dev/mammatus/data' });
  });

  it('attach: the PUT body keeps config, profiles and other devices and adds the volume', () => {
    const i = instance({ gpu: { type: 'gpu' } });
    const put = volumeDevicesPut(i, [{ volume: 'data', instance: 'web1', device: DEV, path: '/mnt/data' }]);
    expect(put).toEqual({
      architecture: 'x86_64',
      config: i.config,
      devices: { gpu: { type: 'gpu' }, 'mammatus-vol-data': { type: 'disk', source: DEV, path: '/mnt/data' } },
      ephemeral: false,
      profiles: ['default', 'lan'],
      description: 'kept',
    });
  });

  it('nothing to change: undefined (no PUT); attachments of other instances ignored', () => {
    const i = instance({ 'mammatus-vol-data': { path: '/mnt/data', source: DEV, type: 'disk' } });
    expect(
      volumeDevicesPut(i, [
        { volume: 'data', instance: 'web1', device: DEV, path: '/mnt/data' },
        { volume: 'x', instance: 'db', device: DEV },
      ]),
    ).toBeUndefined();
  });

  it('detach removes the device; a kept volume stays as it is', () => {
    const i = instance({
      root: { type: 'disk', path: '/', pool: 'default' },
      'mammatus-vol-data': { type: 'unix-block', source: DEV, path: '/dev/mammatus/data' },
      'mammatus-vol-logs': { type: 'unix-block', source: '/dev/x', path: '/dev/mammatus/logs' },
    });
    const put = volumeDevicesPut(i, [], new Set(['logs']));
    expect(Object.keys(put!.devices).sort()).toEqual(['mammatus-vol-logs', 'root']);
    expect(instanceVolumeDevices(i)).toEqual({ data: i.devices['mammatus-vol-data'], logs: i.devices['mammatus-vol-logs'] });
  });

  it('a changed mount path replaces the device', () => {
    const i = instance({ 'mammatus-vol-data': { type: 'disk', source: DEV, path: '/mnt/old' } });
    const put = volumeDevicesPut(i, [{ volume: 'data', instance: 'web1', device: DEV, path: '/srv' }]);
    expect(put!.devices['mammatus-vol-data']).toEqual({ type: 'disk', source: DEV, path: '/srv' });
  });
});
