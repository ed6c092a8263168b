/** `roles.compute` parsing: defaults, and errors that name the key. */
import { describe, expect, it } from 'vitest';
import { parseComputeConfig } from '../../../roles/compute/config.js';
import { SettingsError } from '../../../core/validation.js';

describe('parseComputeConfig', () => {
  it('applies the defaults around the one required key', () => {
    expect(parseComputeConfig({ parent: 'eth0' })).toEqual({
      parent: 'eth0',
      lxd: { socket: '/var/lib/lxd/unix.socket' },
      storage: { pool: 'mammatus', driver: 'dir' },
      profile: 'mammatus',
      host_macvlan: { enabled: false, interface: 'mammatus0' },
      registry: { nats: [], port: 4222 },
      paths: { preseed: '/etc/mammatus/compute/preseed.yaml' },
    });
  });

  it('takes every key, and treats a bare "key:" (null) as absent', () => {
    expect(
      parseComputeConfig({
        parent: 'lan0',
        lxd: { socket: '/run/lxd/unix.socket' },
        storage: { pool: 'fast', driver: 'zfs' },
        profile: 'lan',
        host_macvlan: { enabled: true, interface: 'lan0-host', address: '10.88.0.21/24' },
        registry: { nats: ['nats://10.88.0.10:4222'], port: 4223 },
        paths: { preseed: '/tmp/preseed.yaml' },
      }),
    ).toEqual({
      parent: 'lan0',
      lxd: { socket: '/run/lxd/unix.socket' },
      storage: { pool: 'fast', driver: 'zfs' },
      profile: 'lan',
      host_macvlan: { enabled: true, interface: 'lan0-host', address: '10.88.0.21/24' },
      registry: { nats: ['nats://10.88.0.10:4222'], port: 4223 },
      paths: { preseed: '/tmp/preseed.yaml' },
    });
    expect(parseComputeConfig({ parent: 'eth0', storage: null, host_macvlan: { address: null } }).storage.pool).toBe('mammatus');
  });

  it.each([
    [undefined, 'roles.compute.parent: is required'],
    [[], 'roles.compute: must be a mapping'],
    [{ parent: 'eth0', typo: 1 }, 'roles.compute.typo: unknown key'],
    [{ parent: 'a-very-long-interface-name' }, 'roles.compute.parent: must be a network interface name'],
    [{ parent: 7 }, 'roles.compute.parent: must be a string'],
    [{ parent: 'eth0', lxd: { socket: 'relative/unix.socket' } }, 'roles.compute.lxd.socket: must be an absolute path'],
    [{ parent: 'eth0', lxd: 'x' }, 'roles.compute.lxd: must be a mapping'],
    [{ parent: 'eth0', storage: { driver: 'ceph' } }, 'roles.compute.storage.driver: must be one of dir, btrfs, lvm, zfs'],
    [{ parent: 'eth0', storage: { pool: 'my pool' } }, 'roles.compute.storage.pool: must be an LXD name'],
    [{ parent: 'eth0', storage: { size: '10G' } }, 'roles.compute.storage.size: unknown key'],
    [{ parent: 'eth0', profile: 'default' }, 'roles.compute.profile: must not be "default"'],
    [{ parent: 'eth0', host_macvlan: { enabled: 'yes' } }, 'roles.compute.host_macvlan.enabled: must be true or false'],
    [{ parent: 'eth0', host_macvlan: { interface: 'eth0' } }, 'roles.compute.host_macvlan.interface: must differ from parent'],
    [
      { parent: 'eth0', host_macvlan: { address: '10.88.0.21' } },
      'roles.compute.host_macvlan.address: must be an IPv4 address with a prefix length',
    ],
    [{ parent: 'eth0', registry: { nats: 'nats://x:4222' } }, 'roles.compute.registry.nats: must be a list'],
    [{ parent: 'eth0', registry: { port: 0 } }, 'roles.compute.registry.port: must be a port number'],
    [{ parent: 'eth0', paths: { preseed: 'x.yaml' } }, 'roles.compute.paths.preseed: must be an absolute path'],
  ])('refuses %j', (raw, message) => {
    let err: unknown;
    try {
      parseComputeConfig(raw);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SettingsError);
    expect((err as Error).message.startsWith(message)).toBe(true);
  });
});
