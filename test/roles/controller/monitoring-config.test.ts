/** `roles.controller.monitoring`: defaults that follow other keys, and errors that name the key. */
import { describe, expect, it } from 'vitest';
import { parseControllerConfig } from '../../../roles/controller/config.js';
import { MONITORING_DEFAULTS, promDurationSeconds } from '../../../roles/controller/monitoring/index.js';

describe('roles.controller.monitoring', () => {
  it('is off by default, every other key at its default', () => {
    const mon = parseControllerConfig({}).monitoring;
    expect(mon.store).toBeUndefined();
    expect(mon).toEqual(MONITORING_DEFAULTS);
    expect(mon.prometheus).toMatchObject({ listen: '127.0.0.1:9090', retention: '15d', user: 'prometheus' });
    expect(mon.alertmanager).toMatchObject({ enabled: true, binary: 'prometheus-alertmanager', listen: '127.0.0.1:9093' });
    expect(mon.influxdb).toMatchObject({ binary: 'influxd', listen: '127.0.0.1:8086', database: 'mammatus', retention: '30d' });
    expect(mon.agent_metrics).toBe('127.0.0.1:9475');
  });

  it('puts its files beside nats-server.conf and its data beside the NATS store unless set', () => {
    const mon = parseControllerConfig({
      nats: { store_dir: '/srv/lab/nats' },
      paths: { nats_conf: '/etc/lab/nats.conf' },
      monitoring: { store: 'prometheus', influxdb: { data_dir: '/data/influx' } },
    }).monitoring;
    expect(mon.config_dir).toBe('/etc/lab/monitoring');
    expect(mon.prometheus.data_dir).toBe('/srv/lab/prometheus');
    expect(mon.alertmanager.data_dir).toBe('/srv/lab/alertmanager');
    expect(mon.influxdb.data_dir).toBe('/data/influx');
  });

  it('keeps Prometheus 2 days with store influxdb unless its retention is set', () => {
    expect(parseControllerConfig({ monitoring: { store: 'influxdb' } }).monitoring.prometheus.retention).toBe('2d');
    expect(
      parseControllerConfig({ monitoring: { store: 'influxdb', prometheus: { retention: '7d' } } }).monitoring.prometheus.retention,
    ).toBe('7d');
  });

  it('fills the SNS receiver from the messaging defaults', () => {
    const sns = parseControllerConfig({
      monitoring: { store: 'prometheus', alerts: { sns: { access_key_id: 'AKIA1', secret_access_key: 'x' } } },
    }).monitoring.alerts.sns;
    expect(sns).toEqual({
      topic: 'mammatus-alerts',
      access_key_id: 'AKIA1',
      secret_access_key: 'x',
      region: 'us-east-1',
      account_id: '000000000000',
      endpoint: 'http://127.0.0.1:9324',
    });
  });

  it('trusts the cluster root (roles.controller.tls.ca) for an https SNS endpoint', () => {
    const sns = (endpoint: string) =>
      parseControllerConfig({
        tls: { ca: '/srv/state/tls/ca.crt' },
        monitoring: { store: 'prometheus', alerts: { sns: { access_key_id: 'AKIA1', secret_access_key: 'x', endpoint } } },
      }).monitoring.alerts.sns!;
    expect(sns('https://127.0.0.1:9324').ca_file).toBe('/srv/state/tls/ca.crt');
    expect(sns('http://127.0.0.1:9324').ca_file).toBeUndefined();
  });

  it('reads Prometheus durations', () => {
    expect(promDurationSeconds('72h')).toBe(259200);
    expect(promDurationSeconds('1h30m')).toBe(5400);
    expect(promDurationSeconds('2w')).toBe(1209600);
    expect(promDurationSeconds('0s')).toBeUndefined();
    expect(promDurationSeconds('5 m')).toBeUndefined();
  });

  const on = (monitoring: Record<string, unknown>) => ({ monitoring: { store: 'prometheus', ...monitoring } });
  it.each([
    [{ monitoring: { store: 'graphite' } }, 'roles.controller.monitoring.store: must be prometheus or influxdb'],
    [on({ prometheus: { listen: 'nope' } }), 'roles.controller.monitoring.prometheus.listen: must be HOST:PORT'],
    [
      on({ prometheus: { retention: '15 days' } }),
      'roles.controller.monitoring.prometheus.retention: must be a positive Prometheus duration',
    ],
    [on({ prometheus: { scrape_interval: '0s' } }), 'roles.controller.monitoring.prometheus.scrape_interval: must be a positive'],
    [on({ prometheus: { user: 'Prom User' } }), 'roles.controller.monitoring.prometheus.user: must be a system user name'],
    [on({ prometheus: { binary: 'prom etheus' } }), 'roles.controller.monitoring.prometheus.binary: must be a program name'],
    [on({ prometheus: { data_dir: 'data' } }), 'roles.controller.monitoring.prometheus.data_dir: must be an absolute path'],
    [
      on({ influxdb: { retention: '30m' } }),
      'roles.controller.monitoring.influxdb.retention: must be a whole number of hours, days or weeks',
    ],
    [on({ influxdb: { database: 'my-db' } }), 'roles.controller.monitoring.influxdb.database: must be 1-64 of'],
    [on({ alertmanager: { enabled: 'yes' } }), 'roles.controller.monitoring.alertmanager.enabled: must be true or false'],
    [on({ alerts: { disk_free: 10 } }), 'roles.controller.monitoring.alerts.disk_free: must be a fraction between 0 and 1'],
    [on({ alerts: { lease_pool: 0 } }), 'roles.controller.monitoring.alerts.lease_pool: must be a fraction between 0 and 1'],
    [on({ alerts: { for: 'soon' } }), 'roles.controller.monitoring.alerts.for: must be a positive Prometheus duration'],
    [on({ alerts: { webhooks: ['ftp://x'] } }), 'roles.controller.monitoring.alerts.webhooks[0]: must be an http:// or https:// URL'],
    [on({ alerts: { sns: { secret_access_key: 'x' } } }), 'roles.controller.monitoring.alerts.sns.access_key_id: is required'],
    [on({ alerts: { sns: { access_key_id: 'AKIA1' } } }), 'roles.controller.monitoring.alerts.sns.secret_access_key: is required'],
    [
      on({ alerts: { sns: { access_key_id: 'AKIA1', secret_access_key: 'x', account_id: 12 } } }),
      'roles.controller.monitoring.alerts.sns.account_id: must be a string',
    ],
    [
      on({ alerts: { sns: { access_key_id: 'AKIA1', secret_access_key: 'x', endpoint: 'sns.local' } } }),
      'roles.controller.monitoring.alerts.sns.endpoint: must be an http:// or https:// origin',
    ],
    [
      on({ alerts: { sns: { access_key_id: 'AKIA1', secret_access_key: 'x', topic: 'a b' } } }),
      'roles.controller.monitoring.alerts.sns.topic: must be an SNS topic name',
    ],
    [
      on({ alertmanager: { listen: '127.0.0.1:9090' } }),
      'roles.controller.monitoring.alertmanager.listen: must not use the port of monitoring.prometheus.listen (9090)',
    ],
    [
      on({ prometheus: { listen: '127.0.0.1:8222' } }),
      'roles.controller.monitoring.prometheus.listen: must not use the port of nats.monitor_listen (8222)',
    ],
    [
      { monitoring: { store: 'influxdb', influxdb: { rpc_listen: '127.0.0.1:8086' } } },
      'roles.controller.monitoring.influxdb.rpc_listen: must not use the port of monitoring.influxdb.listen',
    ],
    [
      on({ prometheus: { data_dir: '/var/lib/mammatus/nats/prom' } }),
      'roles.controller.monitoring.prometheus.data_dir: must not be inside nats.store_dir',
    ],
    // Handed to the daemon's user (chown -R): never the state directory with the credentials, nor /var.
    [
      on({ prometheus: { data_dir: '/var/lib/mammatus' } }),
      'roles.controller.monitoring.prometheus.data_dir: must be a directory of its own (it is handed to the daemon',
    ],
    [on({ influxdb: { data_dir: '/var' } }), 'roles.controller.monitoring.influxdb.data_dir: must be a directory of its own'],
    [
      on({ prometheus: { data_dir: '/srv/m' }, alertmanager: { data_dir: '/srv/m/am' } }),
      'roles.controller.monitoring.alertmanager.data_dir: must not be inside monitoring.prometheus.data_dir',
    ],
    [
      on({ config_dir: '/var/lib/mammatus/prometheus/etc' }),
      'roles.controller.monitoring.config_dir: must not be inside monitoring.prometheus.data_dir',
    ],
    [
      on({ grafana: { provision: 'yes' } }),
      'roles.controller.monitoring.grafana.provision: must be auto (when /etc/grafana exists), always or never',
    ],
    [on({ graphite: {} }), 'roles.controller.monitoring.graphite: unknown key'],
  ])('%j → %s', (raw, message) => {
    const wanted = expect.objectContaining({ name: 'SettingsError', message: expect.stringContaining(message) as string });
    expect(() => parseControllerConfig(raw)).toThrow(wanted);
  });

  it('does not check the ports of a stack that is off', () => {
    expect(() => parseControllerConfig({ monitoring: { alertmanager: { listen: '127.0.0.1:9090' } } })).not.toThrow();
  });
});
