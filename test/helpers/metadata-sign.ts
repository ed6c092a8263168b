/** Proxy identity headers for a test request to a metadata service at `base` (no body). */
import { EMPTY_BODY_SHA256, signIdentity, type CallerIdentity } from '../../src/metadata/identity.js';

/** The headers the gateway's proxy would add to `METHOD base+url` for `id`. */
export function signFor(
  secret: Buffer,
  base: string,
  url: string,
  id: CallerIdentity,
  nowMs = Date.now(),
  method = 'GET',
): Record<string, string> {
  return signIdentity(secret, { method, url, host: new URL(base).host, bodySha256: EMPTY_BODY_SHA256 }, id, nowMs);
}
