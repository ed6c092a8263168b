/** `roles.controller` settings: defaults, and errors that name the key and say what is wanted. */
import { describe, expect, it } from 'vitest';
import { CONTROLLER_DEFAULTS, parseControllerConfig } from '../../../roles/controller/config.js';
import { SettingsError } from '../../../core/validation.js';

const errorOf = (raw: unknown): string => {
  try {
    parseControllerConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsError);
    return (err as Error).message;
  }
  throw new Error('expected a SettingsError');
};

describe('parseControllerConfig', () => {
  it('fills every default for an empty, null or absent section, and for null keys', () => {
    expect(parseControllerConfig(undefined)).toEqual(CONTROLLER_DEFAULTS);
    expect(parseControllerConfig(null)).toEqual(CONTROLLER_DEFAULTS);
    expect(parseControllerConfig({ nats: null, paths: {} })).toEqual(CONTROLLER_DEFAULTS);
    expect(parseControllerConfig({ nats: { listen: null } }).nats.listen).toBe('0.0.0.0:4222');
    expect(CONTROLLER_DEFAULTS.nats).toMatchObject({
      listen: '0.0.0.0:4222',
      cluster_listen: '0.0.0.0:6222',
      monitor_listen: '127.0.0.1:8222',
      cluster_name: 'mammatus',
      store_dir: '/var/lib/mammatus/nats',
      max_payload: 2097152,
    });
  });

  it('keeps what is set and defaults the rest', () => {
    const cfg = parseControllerConfig({
      nats: { listen: '10.0.0.5:4333', store_dir: '/srv/nats' },
      paths: { nats_conf: '/etc/x/nats.conf' },
    });
    expect(cfg.nats).toEqual({ ...CONTROLLER_DEFAULTS.nats, listen: '10.0.0.5:4333', store_dir: '/srv/nats' });
    expect(cfg.paths).toEqual({ ...CONTROLLER_DEFAULTS.paths, nats_conf: '/etc/x/nats.conf' });
  });

  it.each([
    [{ nats: { listen: 'nope' } }, 'roles.controller.nats.listen: must be HOST:PORT'],
    [{ nats: { listen: '0.0.0.0:70000' } }, 'roles.controller.nats.listen: must be HOST:PORT'],
    [{ nats: { cluster_listen: '10.0.0.1' } }, 'roles.controller.nats.cluster_listen: must be HOST:PORT'],
    [{ nats: { monitor_listen: 8222 } }, 'roles.controller.nats.monitor_listen: must be a string'],
    [{ nats: { cluster_name: 'my cluster' } }, 'roles.controller.nats.cluster_name: must be 1-64 of'],
    [{ nats: { store_dir: 'relative/dir' } }, 'roles.controller.nats.store_dir: must be an absolute path'],
    [{ nats: { store_dir: '/var/../etc' } }, 'roles.controller.nats.store_dir: must be an absolute path'],
    [{ nats: { user: 'Nats Server' } }, 'roles.controller.nats.user: must be a system user name'],
    [{ nats: { max_payload: 1000 } }, 'roles.controller.nats.max_payload: must be an integer from 1048576 (1 MiB)'],
    [{ nats: { max_payload: 1572864.5 } }, 'roles.controller.nats.max_payload: must be an integer'],
    [{ nats: { binary: 'nats server' } }, 'roles.controller.nats.binary: must be a program name'],
    [{ nats: { port: 4222 } }, 'roles.controller.nats.port: unknown key'],
    [{ natz: {} }, 'roles.controller.natz: unknown key'],
    [{ paths: { members: '~/members' } }, 'roles.controller.paths.members: must be an absolute path'],
    [{ nats: 'yes' }, 'roles.controller.nats: must be a mapping'],
  ])('%j → %s', (raw, message) => {
    expect(errorOf(raw)).toContain(message);
  });

  it('refuses two listeners on one port, naming the second', () => {
    expect(errorOf({ nats: { monitor_listen: '127.0.0.1:4222' } })).toBe(
      'roles.controller.nats.monitor_listen: must not use the port of nats.listen (4222)',
    );
    expect(errorOf({ nats: { cluster_listen: '10.0.0.1:4222', listen: '10.0.0.1:4222' } })).toMatch(
      /^roles\.controller\.nats\.cluster_listen: /,
    );
  });

  it('refuses our files inside the NATS store, and one file for both paths', () => {
    expect(errorOf({ nats: { store_dir: '/srv/nats' }, paths: { members: '/srv/nats/members' } })).toBe(
      'roles.controller.paths.members: must not be inside nats.store_dir',
    );
    expect(errorOf({ paths: { members: '/etc/m', nats_conf: '/etc/m' } })).toBe(
      'roles.controller.paths: nats_conf, firewall, members and roster must be four different files',
    );
  });
});
