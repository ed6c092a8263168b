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

  describe('ca', () => {
    it('defaults: enabled, auto backend, :9000, provisioner acme, 24h lifetimes, files under /var/lib/mammatus/ca', () => {
      expect(parseControllerConfig({}).ca).toEqual({
        enabled: true,
        backend: 'auto',
        listen: ':9000',
        provisioner: 'acme',
        node_cert_lifetime: '24h',
        cert_lifetime: '24h',
        user: 'auto',
        caddy_binary: 'caddy',
        step_ca_binary: 'step-ca',
        paths: {
          root_cert: '/var/lib/mammatus/ca/root.crt',
          intermediate_cert: '/var/lib/mammatus/ca/intermediate.crt',
          intermediate_key: '/var/lib/mammatus/ca/intermediate.key',
          config: '/etc/mammatus/controller/ca',
          data_dir: '/var/lib/mammatus/ca/data',
        },
      });
      const cfg = parseControllerConfig({ ca: { backend: 'caddy', listen: '10.0.0.5:9443', paths: { config: '/srv/ca' } } }).ca;
      expect(cfg).toMatchObject({
        backend: 'caddy',
        listen: '10.0.0.5:9443',
        paths: { config: '/srv/ca', root_cert: '/var/lib/mammatus/ca/root.crt' },
      });
      expect(parseControllerConfig({ ca: { user: '', node_cert_lifetime: '5m', cert_lifetime: '168h' } }).ca).toMatchObject({ user: '' });
      // Unset, the backend's config moves with nats-server's.
      expect(parseControllerConfig({ paths: { nats_conf: '/srv/lab/nats.conf' } }).ca.paths.config).toBe('/srv/lab/ca');
    });

    it.each([
      [{ ca: { enabled: 'yes' } }, 'roles.controller.ca.enabled: must be true or false'],
      [{ ca: { backend: 'vault' } }, 'roles.controller.ca.backend: must be auto, step-ca or caddy'],
      [{ ca: { listen: '9000' } }, 'roles.controller.ca.listen: must be [HOST]:PORT'],
      [{ ca: { listen: ':0' } }, 'roles.controller.ca.listen: must be [HOST]:PORT'],
      [{ ca: { listen: ':70000' } }, 'roles.controller.ca.listen: must be [HOST]:PORT'],
      [{ ca: { listen: ':4222' } }, 'roles.controller.ca.listen: must not use the port of nats.listen (4222)'],
      [{ ca: { listen: ':8775' } }, 'roles.controller.ca.listen: must not use the metadata port (8775)'],
      [{ ca: { provisioner: 'ACME' } }, 'roles.controller.ca.provisioner: must be 1-63 of a-z 0-9 _ -'],
      [{ ca: { provisioner: 'a/b' } }, 'roles.controller.ca.provisioner: must be 1-63'],
      [{ ca: { node_cert_lifetime: '1d' } }, 'roles.controller.ca.node_cert_lifetime: must be a positive duration'],
      [{ ca: { node_cert_lifetime: '-1h' } }, 'roles.controller.ca.node_cert_lifetime: must be a positive duration'],
      [{ ca: { node_cert_lifetime: '4m' } }, 'roles.controller.ca.node_cert_lifetime: must be from 5m to 168h'],
      [{ ca: { cert_lifetime: '169h' } }, 'roles.controller.ca.cert_lifetime: must be from 5m to 168h'],
      [{ ca: { user: 'Caddy User' } }, 'roles.controller.ca.user: must be auto, a system user name'],
      [{ ca: { caddy_binary: 'caddy --foo' } }, 'roles.controller.ca.caddy_binary: must be a program name'],
      [{ ca: { paths: { root_cert: 'root.crt' } } }, 'roles.controller.ca.paths.root_cert: must be an absolute path'],
      [{ ca: { paths: { root_cert: '/x', intermediate_cert: '/x' } } }, 'roles.controller.ca.paths: root_cert, intermediate_cert'],
      [
        { ca: { paths: { data_dir: '/var/lib/mammatus/nats/ca' } } },
        'roles.controller.ca.paths.data_dir: must not be inside nats.store_dir',
      ],
      [{ ca: { lifetime: '24h' } }, 'roles.controller.ca.lifetime: unknown key'],
    ])('%j → %s', (raw, message) => {
      expect(errorOf(raw)).toContain(message);
    });
  });
});
