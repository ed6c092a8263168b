/**
 * The SQS/SNS API's HTTP server, on plain `node:http` (`node:https` with a certificate): every
 * method and path (`/`, and the `/<account>/<queue>` paths of legacy and queue-URL-addressed
 * clients) goes to one handler. Bodies of every content type arrive as raw bytes, because SigV4
 * signs the exact bytes; `protocol/handle.ts` does the rest.
 *
 * Not fastify (issue 23): one catch-all handler needs no router, schema compiler or hook runner.
 * Without them the API starts about 5 MB smaller (66 → 61 MB RSS, more once requests ran) and the
 * HTTP layer's share of the API's CPU fell from about 4 % to under 2 % (bench/messaging.ts, CPU
 * profiles). What fastify did in front of the route (body limit, undecodable targets, media types,
 * answers while closing) is kept in `http-front.ts`, with the same answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../core/contracts.js';
import { BodyBudget, limitedServer, type HttpLimits, type LimitedServer } from '../../core/http-limits.js';
import { createAccessControl } from './access.js';
import type { MessagingConfig } from './config.js';
import { commonError } from './errors.js';
import {
  frontEndError,
  inClientShape,
  readBody,
  requestHead,
  targetKind,
  upfrontLength,
  validMediaType,
  type BodyHold,
  type FrontEndFailure,
} from './http-front.js';
import { handleRequest, type HandlerDeps, type WireResponse } from './protocol/handle.js';
import { refuseBeforeBody } from './protocol/preauth.js';
import { createSigV4Verifier } from './sigv4.js';
import type { SnsEngine } from './sns-engine.js';
import type { SqsEngine } from './sqs-engine.js';

/** What the server needs; the composition root (or a test) supplies it. */
export interface MessagingAppOptions {
  readonly config: MessagingConfig;
  readonly sqs: SqsEngine;
  readonly sns: SnsEngine;
  readonly log: Logger;
  /**
   * The SNS signing certificate (`SigningCertURL` of signed messages): served unauthenticated at
   * `path`, as receivers fetch it without credentials.
   */
  readonly signingCertificate?: { readonly path: string; readonly pem: string };
  /** Overrides `MESSAGING_HTTP_LIMITS` (tests). */
  readonly limits?: MessagingHttpLimits;
  /** Serve HTTPS with this certificate chain and key (the node certificate, issue 20); absent: plain HTTP. */
  readonly https?: { readonly cert: string; readonly key: string };
}

/** The API's limits: the common ones and how many body bytes it buffers at once. */
export interface MessagingHttpLimits extends HttpLimits {
  /** Request bodies held in memory at once, all connections together; past it a request is 503. */
  readonly maxBufferedBodyBytes: number;
}

/**
 * The API's HTTP limits. The idle timeout leaves room for a 20 s long poll; the request timeout
 * bounds how long a body may trickle in; SDKs hold up to 50 keep-alive sockets per client.
 */
export const MESSAGING_HTTP_LIMITS: MessagingHttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5000,
  idleTimeoutMs: 60_000,
  maxConnections: 2048,
  maxConnectionsPerAddress: 256,
  maxBufferedBodyBytes: 64 * 2 ** 20,
};

/** A built API server (core/tls-listener.ts's `Listenable`); `close` answers requests still arriving 503. */
export interface MessagingApp extends LimitedServer {
  /** The request listener; tests inject requests into it (light-my-request). */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
}

// The methods that reach the pipeline (which answers all but GET, HEAD and POST in the protocol's
// shape); others are refused the same way here. GET and HEAD bodies are not read.
const SERVED: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
const BODYLESS: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/**
 * The API server over `opts`' engines, ready to `listen`. `config.verify_signatures` decides whether
 * SigV4 is checked; credentials are read once, so a config reload builds a new server. Nothing is
 * logged per request above debug: request URLs can carry presigned signatures.
 */
export function buildMessagingApp(opts: MessagingAppOptions): MessagingApp {
  const { config, log } = opts;
  const limits = opts.limits ?? MESSAGING_HTTP_LIMITS;
  const maxBytes = config.max_request_bytes;
  const deps: HandlerDeps = {
    sqs: opts.sqs,
    sns: opts.sns,
    verifier: config.verify_signatures ? createSigV4Verifier({ credentials: config.credentials }) : undefined,
    access: createAccessControl(config.credentials, { accountId: config.account_id, region: config.region }),
    accountId: config.account_id,
    region: config.region,
    baseUrl: config.base_url,
    onInternalError: (err, requestId) => log.error({ err: err.cause ?? err, requestId }, 'messaging request failed'),
  };
  const verifier = deps.verifier;
  const scheme = opts.https ? 'https' : 'http';
  const cert = opts.signingCertificate;
  const certBody = cert ? Buffer.from(cert.pem, 'utf8') : undefined;
  // Every body byte read counts against one budget until its response closes: many clients that
  // each send most of a large body and stall cannot hold more than the budget in memory.
  const budget = new BodyBudget(limits.maxBufferedBodyBytes);
  let closing = false;

  const send = (res: ServerResponse, response: WireResponse, close = false): void => {
    // Bytes, so that nothing is added to the content type; the length also answers a HEAD. Names
    // go out in lower case, as they did from fastify.
    const body = Buffer.from(response.body, 'utf8');
    for (const name in response.headers) res.setHeader(name.toLowerCase(), response.headers[name]);
    res.setHeader('content-length', body.length);
    // A body cut off unread must not be drained on a kept-alive connection; a closing server lets
    // each connection end after its answer.
    if (close || closing) res.setHeader('connection', 'close');
    res.statusCode = response.status;
    res.end(body);
  };
  const refuse = (req: IncomingMessage, res: ServerResponse, failure: FrontEndFailure, close: boolean): void => {
    if (failure === 'budget') log.warn({ inUse: budget.inUse }, 'request bodies in memory at the limit; refusing a body');
    send(res, frontEndError(failure, req, maxBytes), close);
  };

  const serve = async (req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> => {
    // Long polls stop when the client goes away; a finished response is not a departure.
    const abort = new AbortController();
    whenOver(req, res, () => {
      if (!res.writableFinished) abort.abort();
    });
    const response = await handleRequest(
      { ...requestHead(req), body, origin: `${scheme}://${req.headers.host ?? 'localhost'}` },
      deps,
      abort.signal,
    );
    if (log.isLevelEnabled('debug')) log.debug({ method: req.method, path: pathOf(req.url), status: response.status }, 'messaging request');
    send(res, response);
  };

  // Whatever throws outside the pipeline (which never does) is answered InternalFailure, or the
  // connection is dropped when even that cannot be sent: nothing reaches the process's handlers.
  const failed = (req: IncomingMessage, res: ServerResponse, err: unknown): void => {
    log.error({ err }, 'messaging request failed before the pipeline');
    try {
      if (!res.headersSent) refuse(req, res, 'internal', false);
    } catch {
      res.destroy();
    }
  };

  const route = (req: IncomingMessage, res: ServerResponse): void => {
    if (closing) return send(res, inClientShape(req, commonError('ServiceUnavailable')), true);
    const method = req.method ?? 'GET';
    const target = targetKind(req.url ?? '/');
    const served = SERVED.has(method) && target !== 'none';
    // A target no path can be decoded from is answered before anything else looks at the request.
    if (target === 'bad') return refuse(req, res, 'malformed', false);
    // Authentication that needs no body runs as soon as the headers are in: the body of a refused
    // request is never read, and the connection is closed after the answer instead of being drained.
    const refused = verifier ? refuseBeforeBody(requestHead(req), verifier) : undefined;
    if (refused) return send(res, refused, true);
    // A small body of declared length (every SDK request) takes its whole length at once, the
    // others are counted chunk by chunk as they arrive.
    const hold: BodyHold = { bytes: 0 };
    whenOver(req, res, () => budget.give(hold.bytes));
    const declared = upfrontLength(req);
    if (declared !== undefined) {
      if (!budget.take(declared)) return refuse(req, res, 'budget', true);
      hold.bytes = declared;
    }
    if (certBody && BODYLESS.has(method) && pathOf(req.url) === cert?.path) {
      res.setHeader('content-type', 'application/x-pem-file');
      res.setHeader('content-length', certBody.length);
      res.end(certBody);
      return;
    }
    if (!served) {
      return send(res, inClientShape(req, commonError('InvalidAction', `The HTTP method ${method} is not supported; use POST or GET.`)));
    }
    const fail = (err: unknown) => failed(req, res, err);
    const { headers } = req;
    const type = headers['content-type'];
    const empty = type === undefined && headers['transfer-encoding'] === undefined && (headers['content-length'] ?? '0') === '0';
    if (BODYLESS.has(method) || empty) return void serve(req, res, Buffer.alloc(0)).catch(fail);
    if (type !== undefined && !validMediaType(type)) return refuse(req, res, 'malformed', false);
    if (Number(headers['content-length']) > maxBytes) return refuse(req, res, 'too-large', true);
    readBody(req, maxBytes, budget, hold, declared === undefined)
      .then((body) => {
        if (Buffer.isBuffer(body)) return serve(req, res, body);
        refuse(req, res, body, true);
      }, fail)
      .catch(fail);
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      route(req, res);
    } catch (err) {
      failed(req, res, err);
    }
  };

  return {
    ...limitedServer(limits, opts.https, handle, () => {
      closing = true;
    }),
    handle,
  };
}

function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  return q < 0 ? raw : raw.slice(0, q);
}

// The exchanges of each socket still waiting to be over (see `whenOver`): one 'close' listener per
// socket, however many requests a client pipelines on it.
const openExchanges = new WeakMap<Socket, Set<() => void>>();

/**
 * Runs `fn` once, when the exchange is over: its response closed, or its socket did. A pipelined
 * request whose turn never came has a response that never emits 'close' when the socket dies, and
 * what it holds (body budget, a long poll) would be held for good.
 */
function whenOver(req: IncomingMessage, res: ServerResponse, fn: () => void): void {
  const socket = req.socket;
  let open = openExchanges.get(socket);
  if (!open) {
    const exchanges = new Set<() => void>();
    openExchanges.set(socket, exchanges);
    socket.once('close', () => {
      for (const over of exchanges) over();
    });
    open = exchanges;
  }
  const exchanges = open;
  let done = false;
  const over = (): void => {
    if (done) return;
    done = true;
    exchanges.delete(over);
    fn();
  };
  exchanges.add(over);
  res.once('close', over);
}
