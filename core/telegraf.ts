/**
 * Telegraf on every node (issue 22): where Telegraf is installed (InfluxData's repository), the
 * agent keeps a drop-in, `/etc/telegraf/telegraf.d/mammatus.conf`, with the node's basic inputs,
 * its own agent's metrics scraped from the local metrics endpoint, and one `[[outputs.influxdb]]`
 * per controller whose metrics store is InfluxDB. In core/ because every node renders it whatever
 * its roles, so the agent renders it, not a role; the metadata service's vendor-data (src/) uses the
 * same URLs and output blocks for instances.
 *
 * Which controllers run InfluxDB travels in their Serf tag `metrics` (`influxdb` or `prometheus`),
 * set by the controller role from `roles.controller.monitoring.store`: no node reads another's config.
 * Pure.
 */
import type { Member } from './contracts.js';
import { aliveWithRole } from './members.js';
import { sortAddresses, urlHost } from './net.js';
import { tomlString } from './toml.js';

/** The drop-in the agent owns; the package's telegraf.conf is a conffile and stays as shipped. */
export const TELEGRAF_CONF = '/etc/telegraf/telegraf.d/mammatus.conf';
/** Present when the telegraf package is installed: the agent writes nothing without it. */
export const TELEGRAF_DIR = '/etc/telegraf';
/** The Serf tag a controller sets to its metrics store (`roles.controller.monitoring.store`). */
export const METRICS_STORE_TAG = 'metrics';
/** InfluxDB's HTTP port (1.x API) on the controllers. */
export const INFLUXDB_PORT = 8086;
/** The database the controllers' InfluxDB keeps mammatus' metrics in. */
export const INFLUXDB_DATABASE = 'mammatus';
/** The local agent's metrics endpoint, Telegraf's `inputs.prometheus` default. */
export const AGENT_METRICS_URL = 'http://127.0.0.1:9475/metrics';

/** `http://<addr>:8086` of each address (IPv6 in brackets), sorted, without duplicates. */
export function influxdbUrls(addrs: readonly string[], port: number = INFLUXDB_PORT): string[] {
  return sortAddresses(addrs).map((a) => `http://${urlHost(a)}:${port}`);
}

/** Addresses of the alive controllers whose `metrics` tag says their store is InfluxDB, sorted. */
export function influxdbControllers(members: readonly Member[]): string[] {
  return sortAddresses(aliveWithRole(members, 'controller').flatMap((m) => (m.tags[METRICS_STORE_TAG] === 'influxdb' ? [m.addr] : [])));
}

/**
 * One `[[outputs.influxdb]]` per URL, not one block listing them all: Telegraf writes a block's
 * batch to only one of its URLs, while each controller's store must hold everything (Prometheus on
 * every controller scrapes every agent, so any controller answers a query alone). Each block has
 * its own buffer, so a controller that is down delays only its own copy. `createDatabase` for a
 * store of the operator's own (vendor-data's `influxdb_url`), which may expect its writers to.
 */
export function influxdbOutputs(urls: readonly string[], database: string, createDatabase = false): string[] {
  return urls.flatMap((url) => [
    '',
    '[[outputs.influxdb]]',
    `  urls = [${tomlString(url)}]`,
    `  database = ${tomlString(database)}`,
    // The controllers' store creates its database; a writer has no reason to try.
    ...(createDatabase ? [] : ['  skip_database_creation = true']),
  ]);
}

/** Telegraf's basic inputs, the same on nodes and instances. */
export const BASIC_INPUTS: readonly string[] = [
  '[[inputs.cpu]]',
  '  percpu = false',
  '  totalcpu = true',
  '',
  '[[inputs.disk]]',
  '  ignore_fs = ["tmpfs", "devtmpfs", "devfs", "iso9660", "overlay", "aufs", "squashfs"]',
  '',
  '[[inputs.mem]]',
  '',
  '[[inputs.net]]',
  '',
  '[[inputs.system]]',
];

/** What {@link renderTelegraf} renders from. */
export interface TelegrafOptions {
  /** This node's Serf name: the `node` tag, as Prometheus labels the agent's series. */
  readonly node: string;
  /** Addresses of the controllers running InfluxDB ({@link influxdbControllers}); empty = no output. */
  readonly influxdb: readonly string[];
  /** Default {@link INFLUXDB_DATABASE}. */
  readonly database?: string;
  /** Default {@link AGENT_METRICS_URL}. */
  readonly agentMetricsUrl?: string;
}

/** The node's drop-in, as a file the agent writes to {@link TELEGRAF_CONF}. */
export function renderTelegraf(opts: TelegrafOptions): { readonly path: string; readonly content: string } {
  const urls = influxdbUrls(opts.influxdb);
  const lines = [
    '# managed by mammatus: this node\'s Telegraf inputs and output (docs/monitoring.md, "Telegraf")',
    '[global_tags]',
    `  node = ${tomlString(opts.node)}`,
    '',
    ...BASIC_INPUTS,
    '',
    // The agent's own metrics, the same series Prometheus scrapes, for an InfluxDB-only view.
    '[[inputs.prometheus]]',
    `  urls = [${tomlString(opts.agentMetricsUrl ?? AGENT_METRICS_URL)}]`,
    '  metric_version = 2',
    ...(urls.length > 0
      ? influxdbOutputs(urls, opts.database ?? INFLUXDB_DATABASE)
      : [
          '',
          '# No output: no controller runs InfluxDB (roles.controller.monitoring.store is prometheus, or no',
          '# controller is alive). The agent rewrites this file when one does; until then Telegraf sends',
          '# these metrics only to the outputs of its own telegraf.conf.',
        ]),
  ];
  return { path: TELEGRAF_CONF, content: `${lines.join('\n')}\n` };
}
