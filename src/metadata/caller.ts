/**
 * Who is calling the metadata service. A request with identity headers must carry a valid proxy
 * signature never seen before (else 403); one that passed some other proxy cannot be identified
 * (404); otherwise, when allowed, the TCP source address is looked up. A signed caller is found by
 * its MAC and IP, which must not name two different instances.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from '../../core/contracts.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import type { InstanceLookup } from '../registry/view.js';
import {
  EMPTY_BODY_SHA256,
  hasIdentityHeaders,
  passedProxy,
  SIGNATURE_WINDOW_S,
  verifyIdentity,
  type IdentityCheck,
  type SignedRequest,
} from './identity.js';
import { ReplayCache } from './replay-cache.js';

const NONE: IdentityCheck = { kind: 'none' };

/** What a proxy signature must cover: the request as it arrived here. */
function signedRequest(req: Request): SignedRequest {
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    host: req.headers.host ?? '',
    bodySha256: req.bodySha256 ?? EMPTY_BODY_SHA256,
  };
}

/**
 * How a request's caller was resolved. `mac` is the MAC a gateway's proxy signed for it (absent
 * when it was found by its source address): planned hosts are served only to their own MAC.
 */
export type Caller =
  | { readonly record: InstanceRecord; readonly ip: string; readonly mac?: string }
  | { readonly status: 403 | 404 | 503; readonly why: string };

/**
 * A request with its body and the body's SHA-256 (read before handling when it has one: the proxy
 * signs it, and the host routes parse it).
 */
export type Request = IncomingMessage & { bodySha256?: string; body?: Buffer };

/** What resolving needs (a subset of the service's deps). */
export interface CallerDeps {
  readonly lookup: InstanceLookup;
  readonly secret?: Buffer;
  readonly trustSourceAddress: boolean;
  readonly log: Logger;
  /** How many proxy signatures the replay cache holds at most. */
  readonly replayCacheEntries?: number;
}

/** A resolver with its own replay cache. */
export function callerResolver(deps: CallerDeps, now: () => number): (req: Request) => Caller {
  const replays = new ReplayCache(SIGNATURE_WINDOW_S, deps.replayCacheEntries);
  return (req: Request): Caller => {
    // Most callers carry no identity headers: nothing to build or check for them.
    const checked = hasIdentityHeaders(req.headers) ? verifyIdentity(req.headers, deps.secret, signedRequest(req), now()) : NONE;
    if (checked.kind === 'rejected') {
      deps.log.warn({ remote: req.socket.remoteAddress, why: checked.reason }, 'metadata request with bad identity headers refused');
      return { status: 403, why: checked.reason };
    }
    if (!deps.lookup.available) return { status: 503, why: 'instance registry unavailable' };
    if (checked.kind === 'signed') {
      // The signature binds the Host the proxy sent to; when that names an address, it must be the
      // one this request arrived at, so a capture cannot be replayed at another controller.
      const host = req.headers.host ?? '';
      if (!hostIsHere(host, req)) {
        deps.log.warn({ remote: req.socket.remoteAddress, host }, 'metadata request signed for another host refused');
        return { status: 403, why: `signed for host ${host}, which is not this service's address` };
      }
      const verdict = replays.admit(checked.signature, checked.time, now());
      if (verdict === 'replayed') {
        deps.log.warn({ remote: req.socket.remoteAddress }, 'metadata request with a replayed signature refused');
        return { status: 403, why: 'replayed identity signature' };
      }
      if (verdict === 'full') return { status: 503, why: 'replay cache full' };
      const { ip, mac } = checked.identity;
      const byMac = mac ? deps.lookup.byMac(mac) : undefined;
      const byIp = deps.lookup.byIp(ip);
      // A MAC and an IP that name two different instances: someone took another's address.
      if (byMac && byIp && byMac !== byIp) return { status: 403, why: `IP ${ip} belongs to another instance than MAC ${mac}` };
      if (!byMac && byIp && mac && byIp.macs.length) return { status: 403, why: `IP ${ip} is registered for another MAC than ${mac}` };
      const record = byMac ?? byIp;
      return record ? { record, ip, ...(mac ? { mac } : {}) } : { status: 404, why: `no instance has MAC ${mac || '?'} or IP ${ip}` };
    }
    if (passedProxy(req.headers)) return { status: 404, why: 'request passed an unsigned proxy; caller unknown' };
    const ip = sourceAddress(req);
    if (!deps.trustSourceAddress) return { status: 404, why: 'source addresses are not trusted' };
    const record = deps.lookup.byIp(ip);
    return record ? { record, ip } : { status: 404, why: `no instance has IP ${ip}` };
  };
}

/**
 * True when `host` (`addr:port`, `[v6]:port`, port 80 when absent) is the local address and port `req` arrived at, or
 * names a host rather than an address (a configured upstream by name: nothing to compare with).
 */
export function hostIsHere(host: string, req: IncomingMessage): boolean {
  if (!host) return false; // the proxy always sends one
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+))(?::(\d+))?$/.exec(host);
  if (!m) return !isIP(host.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''));
  const addr = (m[1] ?? m[2] ?? '').toLowerCase();
  const local = (req.socket.localAddress ?? '').toLowerCase().replace(/^::ffff:(?=\d+\.)/, '');
  return addr === local && Number(m[3] ?? 80) === req.socket.localPort;
}

/** The TCP peer address, without the IPv4-mapped IPv6 prefix. */
function sourceAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
