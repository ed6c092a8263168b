/** Inputs shared by the vendor-data tests: the repository's templates and a typical instance. */
import { join } from 'node:path';
import {
  loadVendorDataTemplates,
  parseVendorDataSettings,
  type VendorDataCa,
  type VendorDataInput,
  type VendorDataTemplates,
} from '../../../src/metadata/vendor-data.js';

/** The repository's template directory. */
export const TEMPLATE_DIR = join(import.meta.dirname, '..', '..', '..', 'cloud-init', 'vendor-data');

/** A Consul gossip key (32 bytes). */
export const GOSSIP_KEY = Buffer.alloc(32, 1).toString('base64');

/** Cluster settings with all three parts on. */
export const FULL_SETTINGS = {
  consul: { datacenter: 'lab', gossip_key: GOSSIP_KEY },
  vault: {
    address: 'https://10.0.0.1:8200',
    role_id: '59d6d1ca-47bb-4e7e-a40b-8be3bc5a0ba8',
    role_name: 'instances',
    token_file: '/etc/mammatus/vault-token',
  },
  telegraf: {},
};

/** A root certificate (`makeRoot`, made once for these tests) and the default ACME directory. */
export const CA: VendorDataCa = {
  rootPem: `-----BEGIN CERTIFICATE-----
MIIBdTCCARygAwIBAgIQaW5s9U5I3VBieYymtCSU4DAKBggqhkjOPQQDAjAbMRkw
FwYDVQQDExBtYW1tYXR1cyByb290IENBMB4XDTI1MTIzMTIzNTkwMFoXDTM1MTIz
MDAwMDAwMFowGzEZMBcGA1UEAxMQbWFtbWF0dXMgcm9vdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABAvezPpm8605n9XBcPdQ3LGq0XmfRyybz6M10ZdWweT3
S0BbfjS/iHNdfZakZa9aYdjtcvvJ2AAlPWaGVCiyPnejQjBAMA8GA1UdEwEB/wQF
MAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBQITTic4CzUnq+tzyiqdNjB
HHMDHTAKBggqhkjOPQQDAgNHADBEAiB7al88GJR1NtEeJJWS23ZYX/knAYSwKUj8
9kZifGm9cwIgeXj0T7lPDSEZOZNdNvR8ILeMdaWkROxyZztJUVQxHTo=
-----END CERTIFICATE-----
`,
  acmeDirectory: 'https://ca.mammatus:9000/acme/acme/directory',
};

let cached: VendorDataTemplates | undefined;

/** The templates, loaded once per test file. */
export async function templates(): Promise<VendorDataTemplates> {
  cached ??= await loadVendorDataTemplates(TEMPLATE_DIR);
  return cached;
}

/** A typical input; `patch` replaces top-level fields. */
export async function vendorInput(patch: Partial<VendorDataInput> = {}, settings: unknown = FULL_SETTINGS): Promise<VendorDataInput> {
  return {
    instance: { id: 'i-0123456789abcdef0', name: 'web-1', ips: ['10.0.0.21'] },
    controllers: ['10.0.0.3', '10.0.0.10', '10.0.0.2'],
    // Two of the three controllers keep their metrics in InfluxDB (Serf tag metrics=influxdb).
    influxdb: ['10.0.0.10', '10.0.0.2'],
    settings: parseVendorDataSettings(settings),
    vaultWrappedSecretId: 'hvs.CAESIWrappedTokenForTests',
    templates: await templates(),
    ...patch,
  };
}
