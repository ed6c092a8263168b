/**
 * The config files the vendor-data parts write on an instance: Consul's JSON, the Vault agent's HCL
 * and Telegraf's TOML. Rendered here, each value encoded for its own format, and handed to the shell
 * templates as whole files; a shell script that assembled JSON or TOML from raw values would break
 * on the first quote. Pure; keys and lists come out in a fixed order, so output is stable.
 */
import { isIP } from 'node:net';
import { sortAddresses } from '../../core/net.js';
import { BASIC_INPUTS, influxdbOutputs, influxdbUrls } from '../../core/telegraf.js';
import { hclString, tomlString } from '../../core/toml.js';
import type { VendorDataSettings } from './vendor-data-settings.js';

/** The instance a document is for, as the registry knows it. */
export interface VendorDataInstance {
  /** Instance id (`i-…`); a Telegraf global tag. */
  readonly id: string;
  /** Instance name (a DNS label): Consul's node_name and a Telegraf global tag. */
  readonly name: string;
  /** Its addresses, primary first. */
  readonly ips: readonly string[];
}

/** Consul's `bind_addr` when the instance's address is unknown: go-sockaddr picks the private IP. */
export const CONSUL_BIND_TEMPLATE = '{{ GetPrivateIP }}';

/** What Consul agents join: the configured servers as written, else the controllers. */
export function consulJoin(settings: VendorDataSettings, controllers: readonly string[]): string[] {
  return settings.consul.servers ? [...settings.consul.servers] : sortAddresses(controllers);
}

/**
 * Where instances' Telegraf writes: the configured InfluxDB, else every controller whose metrics
 * store is InfluxDB (`http://<address>:8086`, core/telegraf.ts); empty when neither.
 */
export function influxdbTargets(settings: VendorDataSettings, influxdb: readonly string[]): string[] {
  return settings.telegraf.influxdb_url ? [settings.telegraf.influxdb_url] : influxdbUrls(influxdb);
}

/** `/etc/consul.d/mammatus.json`: a client agent of the cluster's datacenter. */
export function renderConsulConfig(instance: VendorDataInstance, settings: VendorDataSettings, join: readonly string[]): string {
  const ip = instance.ips.find((a) => isIP(a) === 4) ?? instance.ips.find((a) => isIP(a) !== 0);
  const config: Record<string, unknown> = {
    bind_addr: ip ?? CONSUL_BIND_TEMPLATE,
    // Where HashiCorp's package creates the data directory, owned by its consul user.
    data_dir: '/opt/consul',
    datacenter: settings.consul.datacenter,
    ...(settings.consul.gossip_key ? { encrypt: settings.consul.gossip_key } : {}),
    // A client that goes away should leave at once, not linger as "failed" in the catalog.
    leave_on_terminate: true,
    node_name: instance.name,
    retry_join: [...join],
    server: false,
  };
  return JSON.stringify(config, null, 2);
}

/** Paths the Vault part uses on the instance (the template uses the same ones). */
export const VAULT_AGENT_PATHS = {
  roleId: '/etc/vault-agent.d/role-id',
  secretId: '/etc/vault-agent.d/secret-id',
  sink: '/run/vault-agent/token',
  pid: '/run/vault-agent/pid',
} as const;

/** `/etc/vault-agent.d/agent.hcl`: AppRole auto-auth, the token kept in a file sink. */
export function renderVaultAgentConfig(settings: VendorDataSettings): string {
  const v = settings.vault;
  if (!v.address) throw new Error('renderVaultAgentConfig: vault.address is not set');
  return [
    '# managed by mammatus: vendor-data part "vault"',
    `pid_file = ${hclString(VAULT_AGENT_PATHS.pid)}`,
    '',
    'vault {',
    `  address = ${hclString(v.address)}`,
    '}',
    '',
    'auto_auth {',
    '  method "approle" {',
    `    mount_path = ${hclString(v.approle_path)}`,
    '    config = {',
    `      role_id_file_path   = ${hclString(VAULT_AGENT_PATHS.roleId)}`,
    `      secret_id_file_path = ${hclString(VAULT_AGENT_PATHS.secretId)}`,
    // The secret_id works once anyway; deleting it after login leaves nothing worth stealing.
    '      remove_secret_id_file_after_reading = true',
    '    }',
    '  }',
    '',
    '  sink "file" {',
    '    config = {',
    `      path = ${hclString(VAULT_AGENT_PATHS.sink)}`,
    '      mode = 0640',
    '    }',
    '  }',
    '}',
  ].join('\n');
}

/**
 * `/etc/telegraf/telegraf.d/mammatus.conf`: tags naming the instance, the basic inputs, one InfluxDB
 * output per URL (`influxdbTargets`): the same inputs and outputs as the nodes' drop-in.
 */
export function renderTelegrafConfig(instance: VendorDataInstance, settings: VendorDataSettings, urls: readonly string[]): string {
  return [
    '# managed by mammatus: vendor-data part "telegraf"',
    '[global_tags]',
    `  instance_id = ${tomlString(instance.id)}`,
    `  instance_name = ${tomlString(instance.name)}`,
    ...influxdbOutputs(urls, settings.telegraf.database, settings.telegraf.influxdb_url !== undefined),
    '',
    ...BASIC_INPUTS,
  ].join('\n');
}
