/** A metadata service that knows no instance, listening on a free loopback port (tests of its HTTP edges). */
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { buildMetadataApp, type MetadataApp } from '../../../src/metadata/server.js';
import { TokenAuthority } from '../../../src/metadata/tokens.js';

/** The started app and its port; the caller closes it. */
export async function startEmptyMetadataApp(): Promise<{ app: MetadataApp; port: number }> {
  const app = buildMetadataApp({
    lookup: { available: true, byMac: () => undefined, byIp: () => undefined, byId: () => undefined },
    tokens: new TokenAuthority(),
    tokenMode: 'optional',
    trustSourceAddress: true,
    domain: 'mammatus',
    availabilityZone: 'dc1a',
    vendorData: async () => '',
    log: pino({ level: 'silent' }),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as AddressInfo).port };
}
