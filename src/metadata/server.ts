/**
 * The metadata HTTP service (fastify): finds the calling instance, then answers from its trees.
 *
 * Who is calling: a request with identity headers must carry a valid proxy signature (else 403);
 * one that passed some other proxy cannot be identified (404); otherwise, when allowed, the TCP
 * source address is looked up. A caller the registry does not know gets 404; while the registry is
 * unreachable every instance path answers 503, and the service stays up.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../../agent/types.js';
import { passedProxy, verifyIdentity } from './identity.js';
import type { InstanceRecord } from './instance.js';
import type { InstanceLookup } from './registry-view.js';
import { parseTokenTtl, type TokenAuthority } from './tokens.js';
import { EC2_VERSIONS, ec2Tree, isEc2Version, listing, nocloudTree, openstackTree, OPENSTACK_VERSIONS, walk, type Dir, type TreeContext } from './tree.js';

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
}

/** How a request's caller was resolved. */
type Caller = { readonly record: InstanceRecord; readonly ip: string } | { readonly status: 403 | 404 | 503; readonly why: string };

const TEXT = 'text/plain; charset=utf-8';

/** Builds the fastify app (not listening yet). */
export function buildMetadataApp(deps: MetadataAppDeps): FastifyInstance {
  const now = deps.now ?? Date.now;
  // Trees are cached per record object: the registry view replaces the object on every change.
  const ec2Cache = new WeakMap<InstanceRecord, Dir>();
  const app = Fastify({ logger: false, bodyLimit: 1024, caseSensitive: true, return503OnClosing: true });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  const resolve = (req: FastifyRequest): Caller => {
    const checked = verifyIdentity(req.headers, deps.secret, req.method, req.url, now());
    if (checked.kind === 'rejected') {
      deps.log.warn({ remote: req.socket.remoteAddress, why: checked.reason }, 'metadata request with bad identity headers refused');
      return { status: 403, why: checked.reason };
    }
    if (!deps.lookup.available) return { status: 503, why: 'instance registry unavailable' };
    if (checked.kind === 'signed') {
      const { ip, mac } = checked.identity;
      const byMac = mac ? deps.lookup.byMac(mac) : undefined;
      const byIp = deps.lookup.byIp(ip);
      // A MAC and an IP that name two different instances: someone took another's address.
      if (byMac && byIp && byMac !== byIp) return { status: 403, why: `IP ${ip} belongs to another instance than MAC ${mac}` };
      if (!byMac && byIp && mac && byIp.macs.length) return { status: 403, why: `IP ${ip} is registered for another MAC than ${mac}` };
      const record = byMac ?? byIp;
      return record ? { record, ip } : { status: 404, why: `no instance has MAC ${mac || '?'} or IP ${ip}` };
    }
    if (passedProxy(req.headers)) return { status: 404, why: 'request passed an unsigned proxy; caller unknown' };
    const ip = sourceAddress(req);
    if (!deps.trustSourceAddress) return { status: 404, why: 'source addresses are not trusted' };
    const record = deps.lookup.byIp(ip);
    return record ? { record, ip } : { status: 404, why: `no instance has IP ${ip}` };
  };

  const ctx = (ip: string): TreeContext => ({ domain: deps.domain, availabilityZone: deps.availabilityZone, callerIp: ip });

  // A failing vendor-data part (e.g. Vault unreachable) must not cost the instance its seed.
  const vendorDataSafe = async (caller: { record: InstanceRecord; ip: string }): Promise<string> => {
    try {
      return await deps.vendorData(caller.record, caller.ip);
    } catch (err) {
      deps.log.error({ instance: caller.record.id, err: (err as Error).message }, 'vendor-data failed; serving none');
      return '';
    }
  };

  app.get('/', (_req, reply) => reply.type(TEXT).send(EC2_VERSIONS.join('\n')));
  app.get('/healthz', (_req, reply) => reply.code(deps.lookup.available ? 200 : 503).type(TEXT).send(deps.lookup.available ? 'ok' : 'registry unavailable'));

  app.put('/*', (req, reply) => {
    const segments = pathOf(req).split('/').filter(Boolean);
    if (segments.length !== 3 || segments[1] !== 'api' || segments[2] !== 'token' || !isEc2Version(segments[0]!)) return notFound(reply);
    // Tokens only under latest (AWS refuses dated paths), never through an open proxy on the instance.
    if (segments[0] !== 'latest') return reply.code(403).type(TEXT).send('Forbidden');
    if (req.headers['x-forwarded-for'] !== undefined) return reply.code(403).type(TEXT).send('Forbidden');
    const ttl = parseTokenTtl(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
    if (ttl === undefined) return reply.code(400).type(TEXT).send('Bad Request');
    const caller = resolve(req);
    if ('status' in caller) return refuse(reply, caller);
    return reply
      .type(TEXT)
      .header('x-aws-ec2-metadata-token-ttl-seconds', String(ttl))
      .send(deps.tokens.mint(caller.record.id, ttl, now()));
  });

  app.get('/*', async (req, reply) => {
    const segments = pathOf(req).split('/');
    const first = segments[1] ?? '';
    if (first === 'nocloud' || first === 'openstack') {
      const caller = resolve(req);
      if ('status' in caller) return refuse(reply, caller);
      if (first === 'openstack' && segments.filter(Boolean).length === 1) return reply.type(TEXT).send(OPENSTACK_VERSIONS.join('\n'));
      if (first === 'openstack' && !(OPENSTACK_VERSIONS as readonly string[]).includes(segments[2] ?? '')) return notFound(reply);
      // Only a request for the document itself builds it: it may mint a Vault credential.
      const wantsVendor = first === 'nocloud' ? segments[2] === 'vendor-data' : segments[3] === 'vendor_data.json';
      const vendor = wantsVendor ? await vendorDataSafe(caller) : '';
      const tree = first === 'nocloud' ? nocloudTree(caller.record, ctx(caller.ip), vendor) : openstackTree(caller.record, ctx(caller.ip), vendor);
      return answer(reply, tree, segments.slice(first === 'nocloud' ? 2 : 3));
    }
    if (!isEc2Version(first)) return notFound(reply);
    const caller = resolve(req);
    if ('status' in caller) return refuse(reply, caller);
    const token = req.headers['x-aws-ec2-metadata-token'];
    if (token !== undefined || deps.tokenMode === 'required') {
      if (typeof token !== 'string' || !deps.tokens.check(token, caller.record.id, now())) return reply.code(401).type(TEXT).send('Unauthorized');
    }
    let tree = ec2Cache.get(caller.record);
    if (!tree) ec2Cache.set(caller.record, (tree = ec2Tree(caller.record, ctx(caller.ip))));
    return answer(reply, tree, segments.slice(2));
  });

  app.route({ method: ['POST', 'DELETE', 'PATCH', 'OPTIONS'], url: '/*', handler: (_req, reply) => reply.code(405).type(TEXT).send('Method Not Allowed') });

  const refuse = (reply: FastifyReply, c: { status: number; why: string }) => {
    if (c.status !== 403) deps.log.debug({ why: c.why }, 'metadata request refused');
    if (c.status === 503) reply.header('retry-after', '1');
    return reply.code(c.status).type(TEXT).send(c.status === 403 ? 'Forbidden' : c.status === 404 ? 'Not Found' : 'Service Unavailable');
  };
  return app;
}

/** The path of a request without its query string. */
function pathOf(req: FastifyRequest): string {
  const q = req.url.indexOf('?');
  return q < 0 ? req.url : req.url.slice(0, q);
}

/** The TCP peer address, without the IPv4-mapped IPv6 prefix. */
function sourceAddress(req: FastifyRequest): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

function notFound(reply: FastifyReply) {
  return reply.code(404).type(TEXT).send('Not Found');
}

function answer(reply: FastifyReply, tree: Dir, segments: readonly string[]) {
  const node = walk(tree, segments);
  if (!node) return notFound(reply);
  if (node.kind === 'dir') return reply.type(TEXT).send(listing(node));
  return reply.type(node.type).send(node.body);
}
