/**
 * The metadata service's vendor-data source: loads the templates and checks `metadata.vendor_data`
 * once at start, then per request renders the instance's document, minting a Vault wrapped
 * secret-id first when the Vault part is on. One mint per instance per minute: cloud-init fetches
 * vendor-data once per boot, so repeats within a minute are retries of that boot and get the same
 * token, while a flood of requests cannot mint without bound. Once the cluster has a CA, its root
 * (read through `caRoot`, cached) and the ACME directory go first.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../../core/contracts.js';
import type { MetadataSettings } from './config.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import type { VendorDataSource } from './service.js';
import { mintWrappedSecretId } from './vault.js';
import { buildVendorData, loadVendorDataTemplates, parseVendorDataSettings, wantsVaultPart } from './vendor-data.js';
import type { VendorDataTemplates } from './vendor-data-templates.js';
import { DEFAULT_ACME_DIRECTORY } from './vendor-data-settings.js';

/** Options of `buildVendorDataSource`. */
export interface VendorSourceOptions {
  readonly settings: MetadataSettings;
  /** Addresses of the controller nodes as Serf knows them (Consul servers). */
  readonly controllers: () => readonly string[];
  /** Addresses of the controllers whose metrics store is InfluxDB (Telegraf's outputs); absent = none. */
  readonly influxdb?: () => readonly string[];
  readonly log: Logger;
  /** Where the templates are (default: the installed or repository copy). */
  readonly templateDir?: string;
  /** The templates themselves, loaded by the agent (the service's own user may not reach the copy it found). */
  readonly templates?: VendorDataTemplates;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
  /** The Vault token itself, read by the agent (root) from `vault.token_file`; without it the file is read here. */
  readonly vaultToken?: string;
  /** The cluster's root (bucket `mammatus-ca`, src/ca/root-cache.ts); absent or undefined: no CA parts. */
  readonly caRoot?: () => Promise<string | undefined>;
}

const MINT_REUSE_MS = 60_000;

/** Builds the source; throws on invalid `metadata.vendor_data` or missing templates (at start, not per request). */
export async function buildVendorDataSource(opts: VendorSourceOptions): Promise<VendorDataSource> {
  const settings = parseVendorDataSettings(opts.settings.vendorData);
  const templates = opts.templates ?? (await loadVendorDataTemplates(opts.templateDir));
  const vault = settings.vault;
  // Read once at start: the controller's Vault token never travels further than this closure.
  const vaultToken = vault.enabled && vault.token_file ? (opts.vaultToken ?? readFileSync(vault.token_file, 'utf8').trim()) : undefined;
  const now = opts.now ?? Date.now;
  const minted = new Map<string, { token: string; at: number }>();

  const wrappedSecretId = async (record: InstanceRecord, callerIp: string): Promise<string | undefined> => {
    if (!vaultToken || !wantsVaultPart(settings, record.vendor_data)) return undefined;
    const recent = minted.get(record.id);
    if (recent && now() - recent.at < MINT_REUSE_MS) return recent.token;
    try {
      const token = await mintWrappedSecretId({
        address: vault.address!,
        token: vaultToken,
        approlePath: vault.approle_path,
        roleName: vault.role_name!,
        wrapTtl: vault.wrap_ttl,
        cidr: record.ips[0] ?? callerIp,
        ...(vault.secret_id_ttl ? { secretIdTtl: vault.secret_id_ttl } : {}),
        metadata: { instance_id: record.id, instance: record.name },
        ...(opts.fetch ? { fetch: opts.fetch } : {}),
      });
      for (const [id, m] of minted) if (now() - m.at >= MINT_REUSE_MS) minted.delete(id);
      minted.set(record.id, { token, at: now() });
      return token;
    } catch (err) {
      // The part then tells the instance why Vault was skipped; the rest of the document still goes.
      opts.log.error({ instance: record.id, err }, 'could not mint a Vault secret-id');
      return undefined;
    }
  };

  const ca = async () => {
    const rootPem = settings.ca?.enabled === false ? undefined : await opts.caRoot?.();
    return rootPem ? { ca: { rootPem, acmeDirectory: settings.ca?.acme_directory ?? DEFAULT_ACME_DIRECTORY } } : {};
  };

  return async (record, callerIp) => {
    const token = await wrappedSecretId(record, callerIp);
    return buildVendorData({
      ...(await ca()),
      instance: { id: record.id, name: record.name, ips: record.ips.length ? record.ips : [callerIp] },
      controllers: opts.controllers(),
      influxdb: opts.influxdb?.() ?? [],
      settings,
      parts: record.vendor_data,
      ...(token ? { vaultWrappedSecretId: token } : {}),
      templates,
    });
  };
}
