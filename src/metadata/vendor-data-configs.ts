/**
 * The config files the vendor-data parts write on an instance: Consul's JSON, the Vault agent's HCL
 * and Telegraf's TOML. Rendered here, each value encoded for its own format, and handed to the shell
 * templates as whole files; a shell script that assembled JSON or TOML from raw values would break
 * on the first quote. Pure; keys and lists come out in a fixed order, so output is stable.
 */
import { isIP } from 'node:net';
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

/** Addresses sorted (IPv4 numerically, then the rest as text) without duplicates: stable output. */
export function sortAddresses(addrs: readonly string[]): string[] {
  const key = (a: string): string =>
    isIP(a) === 4
      ? `0${a
          .split('.')
          .map((o) => o.padStart(3, '0'))
          .join('.')}`
      : `1${a}`;
  return [...new Set(addrs)].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** What Consul agents join: the configured servers as written, else the controllers. */
export function consulJoin(settings: VendorDataSettings, controllers: readonly string[]): string[] {
  return settings.consul.servers ? [...settings.consul.servers] : sortAddresses(controllers);
}

/** The InfluxDB URL: the configured one, else port 8086 on the first controller; absent when neither. */
export function influxdbUrl(settings: VendorDataSettings, controllers: readonly string[]): string | undefined {
  if (settings.telegraf.influxdb_url) return settings.telegraf.influxdb_url;
  const first = sortAddresses(controllers)[0];
  if (first === undefined) return undefined;
  return `http://${isIP(first) === 6 ? `[${first}]` : first}:8086`;
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

/** `/etc/telegraf/telegraf.d/mammatus.conf`: tags naming the instance, one InfluxDB output, basic inputs. */
export function renderTelegrafConfig(instance: VendorDataInstance, settings: VendorDataSettings, url: string): string {
  return [
    '# managed by mammatus: vendor-data part "telegraf"',
    '[global_tags]',
    `  instance_id = ${tomlString(instance.id)}`,
    `  instance_name = ${tomlString(instance.name)}`,
    '',
    '[[outputs.influxdb]]',
    `  urls = [${tomlString(url)}]`,
    `  database = ${tomlString(settings.telegraf.database)}`,
    '',
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
  ].join('\n');
}

/**
 * A double-quoted string both TOML and HCL read back as `value`: `"`, `\`, tab, newline and return
 * escaped by name, every other control character as \uXXXX, lone surrogates (which neither format
 * allows) replaced by U+FFFD.
 */
function quoted(value: string): string {
  let out = '"';
  for (const ch of value.replace(/\p{Cs}/gu, '\uFFFD')) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch in NAMED_ESCAPES) out += NAMED_ESCAPES[ch];
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

const NAMED_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A TOML basic string. */
function tomlString(value: string): string {
  return quoted(value);
}

/** An HCL native-syntax string: also `${` and `%{`, which would start a template, doubled. */
function hclString(value: string): string {
  return quoted(value).replace(/[$%]\{/g, (m) => `${m[0]}${m}`);
}
