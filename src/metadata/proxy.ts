/**
 * The metadata proxy a gateway runs: instances reach 169.254.169.254:80, the gateway redirects that
 * to this proxy, and the proxy forwards to a controller's metadata service, adding who called — the
 * TCP peer address and its MAC from dnsmasq's leases — signed with the cluster secret. It strips
 * any identity headers a caller sent, adds no `X-Forwarded-For` (the service refuses IMDSv2 token
 * requests that carry one, as AWS does, and a caller's own copy is passed on so that rule still
 * bites), and tries the next upstream when one does not answer.
 *
 * Once the node holds the cluster root (`ca`, issue 20), every upstream is reached over HTTPS on its
 * own port, verified against that root and its name (the controllers' certificates name their
 * Serf addresses): no falling back to plain HTTP, which an attacker could force. Instances still
 * reach the proxy itself in plain HTTP (cloud-init's 169.254.169.254 has no TLS).
 *
 * Plain `node:http` streaming: the proxy's whole job is a few header rules, which a generic proxy
 * library would need as many lines of hooks to express.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Logger } from '../../core/contracts.js';
import { enforceConnectionLimits, PerAddressRate, readBodyUpTo, serverOptions, type HttpLimits } from '../../core/http-limits.js';
import { bodySha256, IDENTITY_HEADERS, signIdentity, type CallerIdentity } from './identity.js';

/** Finds the MAC of an IP address ('' when unknown). */
export type MacLookup = (ip: string) => Promise<string>;

/** What the proxy needs. */
export interface ProxyDeps {
  /** Metadata service base URLs (`http://host:port`), tried in order. */
  readonly upstreams: readonly string[];
  readonly secret: Buffer;
  readonly macOf: MacLookup;
  readonly log: Logger;
  readonly now?: () => number;
  /** Per upstream attempt. */
  readonly timeoutMs?: number;
  /** Overrides `PROXY_HTTP_LIMITS` (tests). */
  readonly limits?: HttpLimits;
  /** Requests per second one instance may make, and its burst (default 100 and 200). */
  readonly rate?: { readonly perSecond: number; readonly burst: number };
  /** The cluster root (PEM) now, read per request; with one, upstreams are HTTPS. */
  readonly ca?: () => string | undefined;
}

/**
 * The proxy's HTTP limits: every tenant connects here, each from its own address, and a metadata
 * request is a few hundred bytes that a client sends at once.
 */
export const PROXY_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5000,
  idleTimeoutMs: 30_000,
  maxConnections: 2048,
  maxConnectionsPerAddress: 32,
};

// Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business, never forwarded.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]);
const IDENTITY = new Set<string>(Object.values(IDENTITY_HEADERS));
// Requests to the metadata service are small; anything larger is not a metadata request.
const MAX_BODY = 4096;

/** Builds the proxy server (not listening yet). */
export function buildMetadataProxy(deps: ProxyDeps): http.Server {
  const now = deps.now ?? Date.now;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  // One keep-alive pool per root (a new root, rare, starts a new pool).
  let secure: { ca: string; agent: https.Agent } | undefined;
  const secureAgent = (ca: string): https.Agent => {
    if (secure?.ca === ca) return secure.agent;
    secure?.agent.destroy();
    secure = { ca, agent: new https.Agent({ keepAlive: true, maxSockets: 64, ca }) };
    return secure.agent;
  };
  const limits = deps.limits ?? PROXY_HTTP_LIMITS;
  // Every forwarded request costs each controller a replay-cache entry for a minute: one instance
  // must not be able to fill it for all (cloud-init makes a few dozen requests per boot).
  const rate = new PerAddressRate(deps.rate?.perSecond ?? 100, deps.rate?.burst ?? 200);
  const server = http.createServer(serverOptions(limits), (req, res) => {
    void handle(req, res).catch((err: unknown) => {
      // A caller that hangs up mid-body is its own doing: not an error line any tenant could write.
      if (req.destroyed && !req.complete) {
        deps.log.debug({ err }, 'metadata caller went away');
        res.destroy();
        return;
      }
      deps.log.error({ err }, 'metadata proxy failed');
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('Bad Gateway');
    });
  });
  server.on('close', () => {
    agent.destroy();
    secure?.agent.destroy();
  });
  enforceConnectionLimits(server, limits);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The caller's address, read before any await: when node closes the connection under a request
    // (bytes after it that it cannot parse), the socket forgets its peer, and a request signed for
    // '' would go on naming no one. Such a request is not forwarded at all.
    const remote = req.socket.remoteAddress;
    // Only origin-form targets: an absolute URL, `//host` or `/\\host` would make a URL parser (or
    // an upstream) go to another host, turning the proxy into an open one for tenants. Leading
    // slashes collapse to one (the service counts repeated slashes as one anyway).
    const url = (req.url ?? '/').replace(/^\/+/, '/');
    if (!isOriginForm(url)) {
      res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' }).end('Bad Request');
      return;
    }
    const body = await readBodyUpTo(req, MAX_BODY);
    if (body === undefined) {
      // The rest of the body is never read: close with the answer rather than idle paused.
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }).end('Payload Too Large');
      return;
    }
    if (!remote || req.socket.destroyed) {
      res.destroy();
      return;
    }
    const ip = remote.startsWith('::ffff:') ? remote.slice(7) : remote;
    if (!rate.take(ip, now())) {
      res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '1' }).end('Too Many Requests');
      return;
    }
    const mac = await deps.macOf(ip);
    const headers: Record<string, string | string[]> = {};
    const dropped = new Set((req.headers.connection ?? '').split(',').map((h) => h.trim().toLowerCase()));
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || dropped.has(name) || IDENTITY.has(name)) continue;
      headers[name] = value;
    }
    headers['content-length'] = String(body.length);
    const caller: CallerIdentity = { ip, mac };
    const hash = bodySha256(body);
    const root = deps.ca?.();
    for (const upstream of deps.upstreams) {
      // Signed per attempt, for exactly what that upstream receives: its Host, and the path under its base.
      const origin = new URL(upstream);
      if (root && origin.protocol === 'http:') origin.protocol = 'https:';
      const path = origin.pathname.replace(/\/$/, '') + url;
      const signed = signIdentity(
        deps.secret,
        { method: req.method ?? 'GET', url: path, host: origin.host, bodySha256: hash },
        caller,
        now(),
      );
      const answered = await forward(origin, req.method ?? 'GET', path, { ...headers, ...signed }, body, res, root);
      if (answered) return;
    }
    deps.log.warn({ upstreams: deps.upstreams }, 'no metadata service answered');
    res.writeHead(502, { 'content-type': 'text/plain' }).end('Bad Gateway');
  }

  /** Sends one attempt; resolves false when the upstream could not be reached (try the next). */
  function forward(
    origin: URL,
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    body: Buffer,
    res: ServerResponse,
    root: string | undefined,
  ): Promise<boolean> {
    const tls = origin.protocol === 'https:';
    return new Promise((resolve) => {
      // The host and port are the upstream's, always; the caller's target is only ever a path.
      const up = (tls ? https : http).request(
        {
          protocol: origin.protocol,
          hostname: origin.hostname.replace(/^\[|\]$/g, ''),
          port: origin.port,
          path,
          method,
          headers: { ...headers, host: origin.host },
          agent: tls ? (root ? secureAgent(root) : https.globalAgent) : agent,
          timeout: deps.timeoutMs ?? 3000,
        },
        (upRes) => {
          const out: Record<string, string | string[]> = {};
          for (const [name, value] of Object.entries(upRes.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
          res.writeHead(upRes.statusCode ?? 502, out);
          upRes.pipe(res);
          upRes.on('end', () => resolve(true));
          upRes.on('error', () => resolve(true));
        },
      );
      up.on('timeout', () => up.destroy(new Error('timeout')));
      up.on('error', (err) => {
        if (res.headersSent) {
          res.destroy();
          resolve(true);
          return;
        }
        deps.log.warn({ upstream: origin.origin, err: err.message }, 'metadata upstream failed; trying the next');
        resolve(false);
      });
      up.end(body);
    });
  }
  return server;
}

/** A path (and query) that starts with one `/` and holds no backslash, control character or space. */
export function isOriginForm(target: string): boolean {
  if (!target.startsWith('/') || target.startsWith('//') || target.includes('\\')) return false;
  // Control characters and spaces never reach here from node's parser; refuse them all the same.
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return false;
  }
  return true;
}
