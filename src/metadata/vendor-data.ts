/**
 * The vendor-data document the metadata service serves every instance (`/nocloud/vendor-data`, and
 * the `cloud-init` key of OpenStack's `vendor_data.json`): one `#!/bin/sh` part per bootstrap agent
 * (Consul, Telegraf, Vault), in a `multipart/mixed` MIME document; once the cluster has a CA, its
 * root and ACME directory first (vendor-data-ca.ts: a cloud-config part with `ca_certs` and a script).
 *
 * Why shell parts and not cloud-config: a user's cloud-config beats vendor cloud-config key by key,
 * so a user `runcmd` or `write_files` would silently drop ours, while vendor scripts have their own
 * namespace (cloud-init's scripts_vendor module). Why no secrets: anyone who claims an instance's
 * address on the flat LAN can read its vendor-data, so the Vault part carries a single-use,
 * short-lived wrapping token, never a secret_id (docs/metadata.md).
 *
 * `buildVendorData` is pure: the service mints the wrapping token (`vault.ts`) and loads the
 * templates (`loadVendorDataTemplates`) before calling it.
 */
import {
  consulJoin,
  influxdbTargets,
  renderConsulConfig,
  renderTelegrafConfig,
  renderVaultAgentConfig,
  type VendorDataInstance,
} from './vendor-data-configs.js';
import { renderCaParts, type VendorDataCa } from './vendor-data-ca.js';
import { encodeMultipart, type MimePart } from './vendor-data-mime.js';
import type { VendorDataSettings } from './vendor-data-settings.js';
import { fillTemplate, type VendorDataTemplates } from './vendor-data-templates.js';

export { CONSUL_BIND_TEMPLATE, type VendorDataInstance } from './vendor-data-configs.js';
export { acmeDirectoryUrl, renderCaParts, type VendorDataCa } from './vendor-data-ca.js';
export {
  checkGossipKey,
  parseVendorDataSettings,
  type ConsulSettings,
  type TelegrafSettings,
  type VaultSettings,
  type VendorDataSettings,
} from './vendor-data-settings.js';
export {
  fillTemplate,
  findTemplateDir,
  loadVendorDataTemplates,
  shellQuote,
  SYSTEM_TEMPLATE_DIR,
  VendorDataTemplateError,
  type TemplateSearch,
  type VendorDataTemplates,
} from './vendor-data-templates.js';

/** The parts, in the order cloud-init runs them (it runs vendor scripts sorted by file name). */
export const VENDOR_DATA_PARTS = ['consul', 'telegraf', 'vault'] as const;
/** One vendor-data part. */
export type VendorDataPartName = (typeof VENDOR_DATA_PARTS)[number];

/** Everything one instance's document depends on. */
export interface VendorDataInput {
  readonly instance: VendorDataInstance;
  /** Addresses of the controller nodes (from Serf): Consul's join list. */
  readonly controllers: readonly string[];
  /**
   * Addresses of the controllers whose metrics store is InfluxDB (Serf tag `metrics=influxdb`,
   * core/telegraf.ts `influxdbControllers`): where Telegraf writes. Absent = none.
   */
  readonly influxdb?: readonly string[];
  readonly settings: VendorDataSettings;
  /** The instance's own switches (the registry's `vendor_data`); absent = the cluster's setting. */
  readonly parts?: Readonly<Partial<Record<VendorDataPartName, boolean>>>;
  /** Response-wrapping token of a fresh secret_id (`mintWrappedSecretId`); absent = none could be minted. */
  readonly vaultWrappedSecretId?: string;
  readonly templates: VendorDataTemplates;
  /** The cluster CA (root, ACME directory); absent while the cluster has none (no `ca init`). */
  readonly ca?: VendorDataCa;
}

/** One rendered part. */
export interface VendorDataPart {
  readonly name: VendorDataPartName;
  /** `mammatus-<name>.sh`: the file cloud-init stores and runs. */
  readonly filename: string;
  /** The complete script. */
  readonly content: string;
}

/** A part left out of the document, and why (for the service's log). */
export interface SkippedVendorDataPart {
  readonly name: VendorDataPartName;
  readonly reason: string;
}

/** What `renderVendorDataParts` decided. */
export interface VendorDataPlan {
  readonly parts: readonly VendorDataPart[];
  readonly skipped: readonly SkippedVendorDataPart[];
}

/**
 * Renders each part that is on, and says why the others are off. Pure. A part is on when the
 * instance's switch says so, else when the cluster's `enabled` does; it is still left out when it
 * has nothing to work with (no Consul server or InfluxDB host is known, Vault is not configured).
 *
 * @throws VendorDataTemplateError when a template does not match the values (caught at load time
 *   by `loadVendorDataTemplates`, so only hand-made templates can get here).
 */
export function renderVendorDataParts(input: VendorDataInput): VendorDataPlan {
  const { instance, settings, templates } = input;
  const parts: VendorDataPart[] = [];
  const skipped: SkippedVendorDataPart[] = [];
  const part = (name: VendorDataPartName, values: Record<string, string>): void => {
    const filename = `mammatus-${name}.sh`;
    const text = fillTemplate(filename, templates[name], templates.lib, values);
    parts.push({ name, filename, content: text.endsWith('\n') ? text : `${text}\n` });
  };

  for (const name of VENDOR_DATA_PARTS) {
    const enabled = input.parts?.[name] ?? settings[name].enabled;
    if (!enabled) {
      skipped.push({
        name,
        reason: input.parts?.[name] === false ? 'switched off for this instance' : `metadata.vendor_data.${name}.enabled is false`,
      });
      continue;
    }
    if (name === 'consul') {
      const join = consulJoin(settings, input.controllers);
      if (join.length === 0) skipped.push({ name, reason: 'no controller is known and metadata.vendor_data.consul.servers is not set' });
      else part(name, { CONSUL_CONFIG: renderConsulConfig(instance, settings, join) });
    } else if (name === 'telegraf') {
      const urls = influxdbTargets(settings, input.influxdb ?? []);
      if (urls.length === 0)
        skipped.push({
          name,
          reason:
            'no controller runs InfluxDB (roles.controller.monitoring.store) and metadata.vendor_data.telegraf.influxdb_url is not set',
        });
      else part(name, { TELEGRAF_CONFIG: renderTelegrafConfig(instance, settings, urls) });
    } else {
      const { address, role_id: roleId } = settings.vault;
      if (address === undefined || roleId === undefined) {
        skipped.push({ name, reason: 'metadata.vendor_data.vault.address or role_id is not set' });
        continue;
      }
      // Without a token the part still goes out: on the instance it says why Vault is not set up.
      part(name, {
        VAULT_ADDR: address,
        VAULT_ROLE_ID: roleId,
        VAULT_WRAPPED_SECRET_ID: input.vaultWrappedSecretId ?? '',
        VAULT_AGENT_CONFIG: renderVaultAgentConfig(settings),
      });
    }
  }
  return { parts, skipped };
}

/** The CA parts for `ca`, none when there is no CA or it cannot be rendered (the source logs why). */
function caParts(ca: VendorDataCa | undefined): MimePart[] {
  if (!ca) return [];
  try {
    return renderCaParts(ca);
  } catch {
    return [];
  }
}

/**
 * The vendor-data document for one instance: a `multipart/mixed` MIME document with the CA's two
 * parts when there is a CA, then one `text/x-shellscript` part per part that is on; an empty
 * string when there is nothing (cloud-init treats empty vendor-data as none; the service still
 * answers 200). Pure and deterministic.
 */
export function buildVendorData(input: VendorDataInput): string {
  const { parts } = renderVendorDataParts(input);
  return encodeMultipart([
    ...caParts(input.ca),
    ...parts.map((p) => ({ contentType: 'text/x-shellscript', filename: p.filename, content: p.content })),
  ]);
}

/**
 * True when the cluster's settings (and the instance's switches) call for a Vault part, so the
 * service knows whether to mint a wrapped secret_id before `buildVendorData`.
 */
export function wantsVaultPart(settings: VendorDataSettings, parts?: Readonly<Partial<Record<VendorDataPartName, boolean>>>): boolean {
  return (parts?.vault ?? settings.vault.enabled) && settings.vault.address !== undefined && settings.vault.role_id !== undefined;
}
