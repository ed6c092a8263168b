/**
 * Where the agent's metrics go out (docs/monitoring.md, "How metrics travel"):
 *
 * - `GET /metrics` on `metrics.listen` (loopback by default): this node's exposition, for local
 *   tools (Telegraf's prometheus input, curl).
 * - NATS, `mammatus.metrics.<node>`: the same text for a controller that asks. No agent listens on
 *   the LAN for this: the controllers' NATS already authenticates every node (its nkey) and lets
 *   each subscribe only to its own subject and only controllers ask (roles/controller/permissions.ts).
 * - On a controller, `GET /members/<name>/metrics` on the same local listener: asks member `name`
 *   over NATS (or answers itself for its own name). The controller's Prometheus scrapes every member
 *   through it, with targets from Serf membership (roles/controller/monitoring).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../core/contracts.js';
import { errorMessage } from '../core/errors.js';
import { METRICS_CONTENT_TYPE, exposition } from '../core/metrics.js';
import { splitHostPort } from '../core/net.js';
import { METRICS_SUBJECT, checkNodeName } from '../core/trust.js';

/** How long a controller waits for a member's answer (Prometheus' scrape timeout is 10 s by default). */
export const GATHER_TIMEOUT_MS = 5000;

/** An answer that is not an exposition: the member could not read its metrics. */
const ERROR_PREFIX = '# mammatus-error: ';

/** What the listener needs. */
export interface MetricsHttpDeps {
  /** This node's Serf name. */
  node(): string;
  /** The NATS connection a controller asks members on; undefined on other nodes (or before it connects). */
  gatherer(): NatsConnection | undefined;
  readonly log: Logger;
}

/** Answers one request; never throws. */
async function handle(req: IncomingMessage, res: ServerResponse, deps: MetricsHttpDeps): Promise<void> {
  const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET\n');
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/metrics') return send(200, await exposition(), METRICS_CONTENT_TYPE);
  const match = /^\/members\/([^/]+)\/metrics$/.exec(path);
  if (!match) return send(404, 'GET /metrics, or /members/<name>/metrics on a controller\n');
  let name: string;
  try {
    name = decodeURIComponent(match[1]);
    checkNodeName(name);
  } catch {
    return send(400, 'not a node name\n');
  }
  if (name === deps.node()) return send(200, await exposition(), METRICS_CONTENT_TYPE);
  const nc = deps.gatherer();
  if (!nc) return send(404, 'only a controller connected to NATS gathers other members\n');
  try {
    const reply = await nc.request(`${METRICS_SUBJECT}.${name}`, new Uint8Array(0), { timeout: GATHER_TIMEOUT_MS });
    const text = reply.string();
    if (text.startsWith(ERROR_PREFIX)) return send(502, `${name}: ${text.slice(ERROR_PREFIX.length)}\n`);
    return send(200, text, METRICS_CONTENT_TYPE);
  } catch (err) {
    // No responders (the member is down or has metrics off) or no answer in time: `up` is 0.
    return send(503, `no metrics from ${name}: ${errorMessage(err)}\n`);
  }
}

/**
 * Starts the local listener on `listen` (`host:port`); resolves once it listens, rejects when it
 * cannot (the port is taken). Requests have no body; a slow client is cut after 10 s.
 */
export async function startMetricsHttp(listen: string, deps: MetricsHttpDeps): Promise<Server> {
  const { host, port } = splitHostPort(listen, { allowPortZero: true });
  // connectionsCheckingInterval: Node checks the header timeout only that often (30 s by default).
  const opts = { requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 8192, connectionsCheckingInterval: 1000 };
  const server = createServer(opts, (req, res) => {
    handle(req, res, deps).catch((err: unknown) => {
      deps.log.warn({ err: errorMessage(err) }, 'metrics request failed');
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.keepAliveTimeout = 30_000;
  // A local client cannot hold more: metrics are read by one Prometheus (or a person with curl).
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Accept errors (EMFILE) come as 'error' events: without a listener they would end the agent.
  server.on('error', (err) => deps.log.warn({ err: errorMessage(err) }, 'metrics listener error'));
  return server;
}

/** Closes `server`, dropping idle keep-alive connections. */
export function stopMetricsHttp(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Answers the controllers' requests on `mammatus.metrics.<node>` with this node's exposition. An
 * answer the server would refuse (over its payload limit) becomes a short error the asker reports.
 * `failed`: the subscription was refused or ended.
 */
export function answerMetrics(nc: NatsConnection, node: string, log: Logger, failed: () => void): Subscription {
  return nc.subscribe(`${METRICS_SUBJECT}.${node}`, {
    callback: (err, msg) => {
      if (err) {
        // Refused (controllers not yet granting the subject): the caller connects again later.
        log.warn({ err: errorMessage(err) }, 'metrics subscription failed; retrying');
        return failed();
      }
      exposition()
        .then((text) => {
          const fits = Buffer.byteLength(text) <= (nc.info?.max_payload ?? 1024 * 1024) - 1024;
          msg.respond(fits ? text : `${ERROR_PREFIX}exposition of ${Buffer.byteLength(text)} bytes over the server's payload limit`);
        })
        .catch((e: unknown) => log.warn({ err: errorMessage(e) }, 'answering a metrics request failed'));
    },
  });
}
