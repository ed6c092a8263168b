/**
 * Builds the vendor-data source of the metadata service: templates, settings and Vault credentials
 * put together per request. (Filled in when vendor-data.ts lands.)
 */
import type { Logger } from '../../agent/types.js';
import type { MetadataSettings } from './config.js';
import type { VendorDataSource } from './service.js';

/** Options of `buildVendorDataSource`. */
export interface VendorSourceOptions {
  readonly settings: MetadataSettings;
  /** Addresses of the controller nodes as Serf knows them (Consul servers, InfluxDB). */
  readonly controllers: () => readonly string[];
  readonly log: Logger;
}

/** The vendor-data source for the service. */
export async function buildVendorDataSource(_opts: VendorSourceOptions): Promise<VendorDataSource> {
  return async () => '';
}
