/**
 * The metadata HTTP service (plain node:http): finds the calling instance, then answers from its trees.
 *
 * Who is calling: a request with identity headers must carry a valid proxy signature (else 403);
 * one that passed some other proxy cannot be identified (404); otherwise, when allowed, the TCP
 * source address is looked up. A caller the registry does not know gets 404; while the registry is
 * unreachable every instance path answers 503, and the service stays up.
 *
 * Planned bare-metal hosts have their own paths (host-routes.ts): `GET /mammatus/ipxe`, their
 * NoCloud seed, `POST /mammatus/join` and `POST /mammatus/installed`.
 *
 * Plain `node:http`, not fastify: the service is a handful of read-only paths looked up in memory,
 * and fastify's own per-request work cost more than the whole budget of the throughput goal
 * (docs/benchmarks.md §5: bare fastify reached 0.45–0.48 of one nginx worker, bare node:http 0.6–0.7).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../core/contracts.js';
import { bodySha256, passedProxy } from './identity.js';
import { callerResolver, type Request } from './caller.js';
import { limitedServer, readBodyUpTo, type HttpLimits, type LimitedServer } from '../../core/http-limits.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import type { InstanceLookup } from '../registry/view.js';
import { parseTokenTtl, type TokenAuthority } from './tokens.js';
import { answerText, NOT_FOUND, send, TEXT, wireBody, type Answer, type WireBody } from './answer.js';
import type { HostApi } from './host-api.js';
import { countMetadataRequest } from './metrics.js';
import { hostPostPath, hostRoutes } from './host-routes.js';
import {
  EC2_VERSIONS,
  ec2Tree,
  isEc2Version,
  listing,
  nocloudTree,
  openstackTree,
  OPENSTACK_VERSIONS,
  walk,
  type Dir,
  type Node,
  type TreeContext,
} from './tree.js';

/** What the service needs; the composition root (or a test) supplies it. */
export interface MetadataAppDeps {
  readonly lookup: InstanceLookup;
  /** The cluster secret of proxy signatures; absent = identity headers are always refused. */
  readonly secret?: Buffer;
  readonly tokens: TokenAuthority;
  readonly tokenMode: 'optional' | 'required';
  readonly trustSourceAddress: boolean;
  readonly domain: string;
  readonly availabilityZone: string;
  /** The vendor-data document for an instance (may mint a short-lived credential). */
  vendorData(record: InstanceRecord, callerIp: string): Promise<string>;
  readonly log: Logger;
  readonly now?: () => number;
  /** Overrides `METADATA_HTTP_LIMITS` (tests). */
  readonly limits?: HttpLimits;
  /** How many proxy signatures the replay cache holds at most (default 1,000,000). */
  readonly replayCacheEntries?: number;
  /** The controllers' side of planned hosts; absent = hosts get their scripts, but no seed and no join. */
  readonly hosts?: HostApi;
  /** Serve HTTPS with this chain and key (the node certificate, issue 20); absent: plain HTTP. */
  readonly https?: { readonly cert: string; readonly key: string };
}

/**
 * The service's HTTP limits. Its callers are gateways' proxies, each of which funnels every
 * instance behind it through at most 64 keep-alive connections, and instances on trusted networks.
 */
export const METADATA_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5000,
  // No per-socket idle timer: refreshing it on every read and write cost ~7 % of the throughput
  // (docs/benchmarks.md §10), and a reader that stalls mid-answer can only be a gateway's proxy
  // (the controller firewall admits no one else), whose own connections are bounded.
  idleTimeoutMs: 0,
  maxConnections: 4096,
  maxConnectionsPerAddress: 256,
};

// Metadata requests carry no body, a host's join a few hundred bytes: a larger one is refused.
const MAX_BODY = 1024;

/** The service's HTTP server. */
export type MetadataApp = LimitedServer;

/** Builds the service (not listening yet). */
export function buildMetadataApp(deps: MetadataAppDeps): MetadataApp {
  const now = deps.now ?? Date.now;
  // Trees are cached per record object (the registry view replaces the object on every change) and
  // caller address (a record without IPs shows the caller's as local-ipv4).
  const ec2Cache: TreeCache = new WeakMap();
  const seedCache: Record<'nocloud' | 'openstack', TreeCache> = { nocloud: new WeakMap(), openstack: new WeakMap() };

  const resolve = callerResolver(deps, now);

  const ctx = (ip: string): TreeContext => ({ domain: deps.domain, availabilityZone: deps.availabilityZone, callerIp: ip });

  // A failing vendor-data part (e.g. Vault unreachable) must not cost the instance its seed.
  const vendorDataSafe = async (caller: { record: InstanceRecord; ip: string }): Promise<string> => {
    try {
      return await deps.vendorData(caller.record, caller.ip);
    } catch (err) {
      deps.log.error({ instance: caller.record.id, err }, 'vendor-data failed; serving none');
      return '';
    }
  };

  const refuse = (c: { status: 403 | 404 | 503; why: string }): Answer => {
    if (c.status !== 403) deps.log.debug({ why: c.why }, 'metadata request refused');
    if (c.status === 503) return answerText(503, 'Service Unavailable', { 'retry-after': '1' });
    return c.status === 403 ? answerText(403, 'Forbidden') : NOT_FOUND;
  };

  /** `PUT /latest/api/token` (IMDSv2). */
  const putToken = (req: IncomingMessage, segments: readonly string[]): Answer => {
    const parts = segments.filter(Boolean);
    if (parts.length !== 3 || parts[1] !== 'api' || parts[2] !== 'token' || !isEc2Version(parts[0])) return NOT_FOUND;
    // Tokens only under latest (AWS refuses dated paths), never through an open proxy on the instance.
    if (parts[0] !== 'latest' || req.headers['x-forwarded-for'] !== undefined) return answerText(403, 'Forbidden');
    const ttl = parseTokenTtl(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
    if (ttl === undefined) return answerText(400, 'Bad Request');
    const caller = resolve(req);
    if ('status' in caller) return refuse(caller);
    return answerText(200, deps.tokens.mint(caller.record.id, ttl, now()), { 'x-aws-ec2-metadata-token-ttl-seconds': String(ttl) });
  };

  const validToken = (req: IncomingMessage, instanceId: string): boolean => {
    const token = req.headers['x-aws-ec2-metadata-token'];
    return typeof token === 'string' && deps.tokens.check(token, instanceId, now());
  };

  const hosts = hostRoutes({ ...(deps.hosts ? { api: deps.hosts } : {}), log: deps.log, now, validToken });

  /**
   * With `tokens: required`, a NoCloud or OpenStack read needs an IMDSv2 token or must come from
   * cloud-init's own reader, which cannot send one: it is told by its `Cloud-Init/…` User-Agent, a
   * header that a plain SSRF (a URL a tenant makes some program fetch) cannot set — the model of
   * GCP's `Metadata-Flavor`. A request that passed an HTTP proxy on the instance never qualifies.
   */
  const seedReaderProven = (req: IncomingMessage, instanceId: string): boolean => {
    if (validToken(req, instanceId)) return true;
    if (passedProxy(req.headers)) return false;
    const agent = req.headers['user-agent'];
    return typeof agent === 'string' && CLOUD_INIT_AGENT.test(agent);
  };

  /** GET (and HEAD) of every tree. */
  const get = (req: IncomingMessage, segments: readonly string[]): Answer | Promise<Answer> => {
    const first = segments[1] ?? '';
    if (segments.length === 2 && first === '') return answerText(200, EC2_VERSIONS.join('\n'));
    if (first === 'healthz' && segments.length === 2) {
      return deps.lookup.available ? answerText(200, 'ok') : answerText(503, 'registry unavailable');
    }
    if (first === 'mammatus' && segments.filter(Boolean).join('/') === 'mammatus/ipxe') {
      const caller = resolve(req);
      if ('status' in caller) return refuse(caller);
      const host = hosts.hostOf(caller);
      // No token: iPXE cannot ask for one, and the script holds nothing secret.
      return host ? hosts.ipxe(req, host) : NOT_FOUND;
    }
    if (first === 'nocloud' || first === 'openstack') {
      const caller = resolve(req);
      if ('status' in caller) return refuse(caller);
      // A planned host is seeded from /nocloud/ alone: no OpenStack tree (its vendor-data may mint a Vault credential).
      if (first === 'openstack' && caller.record.host) return NOT_FOUND;
      if (deps.tokenMode === 'required' && !seedReaderProven(req, caller.record.id)) return answerText(401, 'Unauthorized');
      if (first === 'nocloud' && caller.record.host) {
        // A planned host's seed holds its join secret: only for its own MAC, vouched for by a gateway.
        const host = hosts.hostOf(caller);
        return host ? hosts.nocloud(req, host, ctx(caller.ip), segments.slice(2)) : NOT_FOUND;
      }
      if (first === 'openstack' && segments.filter(Boolean).length === 1) return answerText(200, OPENSTACK_VERSIONS.join('\n'));
      if (first === 'openstack' && !(OPENSTACK_VERSIONS as readonly string[]).includes(segments[2] ?? '')) return NOT_FOUND;
      const rest = segments.slice(first === 'nocloud' ? 2 : 3);
      const build = first === 'nocloud' ? nocloudTree : openstackTree;
      const leaf = rest.filter(Boolean);
      // Only a request for the vendor-data document builds it (it may mint a Vault credential);
      // every other leaf comes from a tree cached per record.
      if (leaf.length === 1 && leaf[0] === (first === 'nocloud' ? 'vendor-data' : 'vendor_data.json')) {
        return vendorDataSafe(caller).then((vendor) => answer(build(caller.record, ctx(caller.ip), vendor), rest));
      }
      return answer(
        cached(seedCache[first], caller, () => build(caller.record, ctx(caller.ip), '')),
        rest,
      );
    }
    if (!isEc2Version(first)) return NOT_FOUND;
    const caller = resolve(req);
    if ('status' in caller) return refuse(caller);
    // Nor the EC2 tree: a planned host reads its seed from /nocloud/ (its token PUT stays: the joins need one).
    if (caller.record.host) return NOT_FOUND;
    const token = req.headers['x-aws-ec2-metadata-token'];
    if ((token !== undefined || deps.tokenMode === 'required') && !validToken(req, caller.record.id))
      return answerText(401, 'Unauthorized');
    return answer(
      cached(ec2Cache, caller, () => ec2Tree(caller.record, ctx(caller.ip))),
      segments.slice(2),
    );
  };

  const handle = (req: IncomingMessage): Answer | Promise<Answer> => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    // EC2 treats a run of slashes as one, and clients rely on it: the AWS SDK's MetadataService
    // asks for `//latest/meta-data/…` (its endpoint's path `/` joined with the request's).
    const segments = (q < 0 ? url : url.slice(0, q)).replace(/\/{2,}/g, '/').split('/');
    if (req.method === 'GET' || req.method === 'HEAD') return get(req, segments);
    if (req.method === 'PUT') return putToken(req, segments);
    const hostPath = req.method === 'POST' ? hostPostPath(segments) : undefined;
    if (hostPath) {
      const caller = resolve(req);
      return 'status' in caller ? refuse(caller) : hosts.post(req, hostPath, caller);
    }
    return answerText(405, 'Method Not Allowed');
  };

  let closing = false;
  const limits = deps.limits ?? METADATA_HTTP_LIMITS;
  // Every answer goes out here, and is counted (metrics.ts) with the time since `startedAt`.
  const reply = (req: Request, res: ServerResponse, a: Answer, startedAt: number, close = false): void => {
    send(req, res, a, close);
    countMetadataRequest(req.method, req.url, a.status, startedAt);
  };
  const respond = (req: Request, res: ServerResponse, startedAt: number): void => {
    if (closing) return reply(req, res, answerText(503, 'Service Unavailable'), startedAt);
    const failed = (err: unknown) => {
      deps.log.error({ err }, 'metadata request failed');
      reply(req, res, answerText(500, 'Internal Server Error'), startedAt);
    };
    // Most answers come straight from memory: no promise for them (it shows in the throughput).
    try {
      const a = handle(req);
      if (a instanceof Promise) a.then((x) => reply(req, res, x, startedAt), failed);
      else reply(req, res, a, startedAt);
    } catch (err) {
      failed(err);
    }
  };
  const handler = (req: Request, res: ServerResponse) => {
    const startedAt = performance.now();
    // Metadata requests carry no body: a large one is refused, a small one read and hashed (the
    // proxy's signature covers it). Most requests have none and are answered without waiting.
    const length = req.headers['content-length'];
    if (Number(length ?? 0) > MAX_BODY) return reply(req, res, answerText(413, 'Payload Too Large'), startedAt, true);
    if ((length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined) {
      req.resume();
      return respond(req, res, startedAt);
    }
    readBodyUpTo(req, MAX_BODY).then(
      (body) => {
        if (body === undefined) return reply(req, res, answerText(413, 'Payload Too Large'), startedAt, true);
        req.bodySha256 = bodySha256(body);
        req.body = body;
        respond(req, res, startedAt);
      },
      () => res.destroy(),
    );
  };
  return limitedServer(limits, deps.https, handler, () => {
    closing = true;
  });
}

/** cloud-init's reader's User-Agent (`Cloud-Init/22.4.2`). */
const CLOUD_INIT_AGENT = /^Cloud-Init\/\d/;

type TreeCache = WeakMap<InstanceRecord, { ip: string; tree: Dir }>;

/** The cached tree of this caller, built on a miss. */
function cached(cache: TreeCache, caller: { record: InstanceRecord; ip: string }, build: () => Dir): Dir {
  const hit = cache.get(caller.record);
  if (hit && hit.ip === caller.ip) return hit.tree;
  const tree = build();
  cache.set(caller.record, { ip: caller.ip, tree });
  return tree;
}

// Encoded bodies per tree node: the trees are cached per record, so each leaf is encoded once.
const encoded = new WeakMap<Node, WireBody>();

/** The node at `segments` as an answer: a listing, a leaf, or 404. */
function answer(tree: Dir, segments: readonly string[]): Answer {
  const node = walk(tree, segments);
  if (!node) return NOT_FOUND;
  let body = encoded.get(node);
  if (!body) encoded.set(node, (body = wireBody(node.kind === 'dir' ? listing(node) : node.body)));
  return { status: 200, body, type: node.kind === 'dir' ? TEXT : node.type };
}
