/**
 * The SQS/SNS API as a fastify plugin: one catch-all route for GET and POST on any path (`/`, and
 * the `/<account>/<queue>` paths of legacy and queue-URL-addressed clients). Bodies of every content
 * type arrive as raw bytes, because SigV4 signs the exact bytes; `protocol/handle.ts` does the rest.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../core/contracts.js';
import { Transform } from 'node:stream';
import { BodyBudget, enforceConnectionLimits, serverOptions, type HttpLimits } from '../../core/http-limits.js';
import { createAccessControl } from './access.js';
import type { MessagingConfig } from './config.js';
import { commonError, snsError, sqsError, type MessagingError, type Service } from './errors.js';
import { countRequest } from './metrics.js';
import { isJsonRequest } from './protocol/detect.js';
import { handleRequest, renderError, type HandlerDeps, type WireRequest, type WireResponse } from './protocol/handle.js';
import { refuseBeforeBody } from './protocol/preauth.js';
import { createSigV4Verifier, readCredentialScope, type RequestHead } from './sigv4.js';
import type { SnsEngine } from './sns-engine.js';
import type { SqsEngine } from './sqs-engine.js';

/** What the plugin needs; the composition root (or a test) supplies it. */
export interface MessagingPluginOptions {
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

/** The error a body past the budget fails with; the error handler answers it 503 ServiceUnavailable. */
class BudgetExceeded extends Error {
  readonly statusCode = 503;
  readonly code = 'MAMMATUS_BODY_BUDGET';
}

/**
 * Registers the API on `app` (encapsulated: its content-type parsers and error handler stay inside).
 * `config.verify_signatures` decides whether SigV4 is checked; credentials are read once, so a
 * config reload registers a new app.
 */
export async function messagingPlugin(app: FastifyInstance, opts: MessagingPluginOptions): Promise<void> {
  const { config, log } = opts;
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

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.max_request_bytes }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err: FastifyError, request, reply) => {
    // A body cut off unread must not be drained on a kept-alive connection.
    if (err.code === 'MAMMATUS_BODY_BUDGET') reply.header('connection', 'close');
    return send(reply, frontEndError(err, request, config.max_request_bytes));
  });

  // Every body byte read counts against one budget until its request ends: many clients that each
  // send most of a large body and stall cannot hold more than the budget in memory.
  const budget = new BodyBudget((opts.limits ?? MESSAGING_HTTP_LIMITS).maxBufferedBodyBytes);
  app.addHook('preParsing', async (request, reply, payload) => {
    let held = 0;
    reply.raw.once('close', () => budget.give(held));
    // A small body of declared length (every SDK request) takes its whole length at once: memory
    // stays within the budget as before, without a stream per request to count it chunk by chunk.
    const declared = upfrontLength(request);
    if (declared !== undefined) {
      if (!budget.take(declared)) {
        log.warn({ inUse: budget.inUse }, 'request bodies in memory at the limit; refusing a body');
        throw new BudgetExceeded('request bodies in memory at the limit');
      }
      held = declared;
      return payload;
    }
    return payload.pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          if (!budget.take(chunk.length)) {
            log.warn({ inUse: budget.inUse }, 'request bodies in memory at the limit; refusing a body');
            return done(new BudgetExceeded('request bodies in memory at the limit'));
          }
          held += chunk.length;
          done(null, chunk);
        },
      }),
    );
  });

  // Authentication that needs no body runs as soon as the headers are in: the body of a refused
  // request is never read, and the connection is closed after the answer instead of being drained.
  const verifier = deps.verifier;
  if (verifier) {
    app.addHook('onRequest', async (request, reply) => {
      const refused = refuseBeforeBody(requestHead(request), verifier);
      if (refused) return send(reply.header('connection', 'close'), refused);
    });
  }

  const cert = opts.signingCertificate;
  if (cert) {
    app.get(cert.path, async (_request, reply) =>
      reply.header('content-type', 'application/x-pem-file').send(Buffer.from(cert.pem, 'utf8')),
    );
  }

  // Every method fastify routes reaches the handler (which refuses all but GET and POST in the
  // protocol's shape); methods it does not route, and URLs it cannot decode, get the same shape below.
  app.setNotFoundHandler((request, reply) =>
    send(
      reply,
      inClientShape(request, commonError('InvalidAction', `The HTTP method ${request.method} is not supported; use POST or GET.`)),
    ),
  );
  app.route({
    method: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
    url: '/*',
    bodyLimit: config.max_request_bytes,
    handler: async (request, reply) => {
      // Long polls stop when the client goes away; a finished response is not a departure.
      const abort = new AbortController();
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) abort.abort();
      });
      const response = await handleRequest(toWireRequest(request), deps, abort.signal);
      if (log.isLevelEnabled('debug')) {
        log.debug({ method: request.method, path: pathOf(request.raw.url), status: response.status }, 'messaging request');
      }
      return send(reply, response);
    },
  });
}

/**
 * A fastify app serving only the messaging API, ready to `listen` (or `inject` in tests).
 * Request logging is off: request URLs can carry presigned signatures.
 */
export function buildMessagingApp(opts: MessagingPluginOptions): FastifyInstance {
  const limits = opts.limits ?? MESSAGING_HTTP_LIMITS;
  const app = Fastify({
    logger: false,
    bodyLimit: opts.config.max_request_bytes,
    return503OnClosing: true,
    // With TLS the same server limits go to https.createServer, beside the certificate.
    ...(opts.https ? { https: { ...serverOptions(limits), cert: opts.https.cert, key: opts.https.key } } : { http: serverOptions(limits) }),
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    // A URL fastify cannot decode (`/%e9/`) is answered in the protocol's shape, not fastify's.
    frameworkErrors: (err, request, reply) => void send(reply, frontEndError(err, request, opts.config.max_request_bytes)),
  });
  enforceConnectionLimits(app.server, limits);
  void app.register(messagingPlugin, opts);
  return app;
}

/**
 * Bodies up to this size are counted against the budget whole, from their `content-length`, before
 * they arrive. Small enough that connections announcing bodies they never send cannot use the
 * budget up (maxConnections × 16 KiB = 32 MiB, half of it); larger bodies are counted as they come.
 */
const UPFRONT_BODY_BYTES = 16 * 1024;

// The declared length of a small body without chunked framing (Node refuses a request with both).
function upfrontLength(request: FastifyRequest): number | undefined {
  const { headers } = request;
  const raw = headers['content-length'];
  if (headers['transfer-encoding'] !== undefined || typeof raw !== 'string' || raw === '') return undefined;
  const length = Number(raw);
  return Number.isInteger(length) && length >= 0 && length <= UPFRONT_BODY_BYTES ? length : undefined;
}

function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  return q < 0 ? raw : raw.slice(0, q);
}

function requestHead(request: FastifyRequest): RequestHead {
  const url = request.raw.url ?? '/';
  const q = url.indexOf('?');
  return {
    method: request.method,
    rawPath: q < 0 ? url : url.slice(0, q),
    rawQuery: q < 0 ? '' : url.slice(q + 1),
    headers: request.headers,
  };
}

function toWireRequest(request: FastifyRequest): WireRequest {
  const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  return { ...requestHead(request), body, origin: `${request.protocol}://${request.headers.host ?? 'localhost'}` };
}

// A Buffer payload is sent as is: for strings fastify would append `; charset=utf-8` to the type.
function send(reply: FastifyReply, response: WireResponse): FastifyReply {
  return reply.code(response.status).headers(response.headers).send(Buffer.from(response.body, 'utf8'));
}

/** `error` rendered in the protocol and service the request's headers point to. */
function inClientShape(request: FastifyRequest, error: MessagingError): WireResponse {
  const json = isJsonRequest(request.headers);
  const signedFor = readCredentialScope({ method: request.method, rawPath: '/', rawQuery: '', headers: request.headers })?.service;
  const service: Service = !json && signedFor === 'sns' ? 'sns' : 'sqs';
  // Refused before the pipeline (a method not routed, a body too large or unreadable): counted here.
  countRequest({ service, action: undefined, outcome: error.code });
  return renderError(error, json ? 'json' : 'query', service, randomUUID());
}

/** Errors raised by fastify before the route runs (body too large, broken framing, an undecodable URL), in the client's shape. */
function frontEndError(err: FastifyError, request: FastifyRequest, limit: number): WireResponse {
  const json = isJsonRequest(request.headers);
  const sns =
    !json && readCredentialScope({ method: request.method, rawPath: '/', rawQuery: '', headers: request.headers })?.service === 'sns';
  let error: MessagingError;
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const tooLong = `Request body must be shorter than ${limit} bytes.`;
    if (sns) error = snsError('InvalidParameter', `Invalid parameter: ${tooLong}`);
    else if (json && String(request.headers['x-amz-target']).endsWith('.SendMessageBatch')) error = sqsError('BatchRequestTooLong');
    else error = sqsError('InvalidParameterValue', `One or more parameters are invalid. Reason: ${tooLong}`);
  } else if (err.code === 'MAMMATUS_BODY_BUDGET') {
    error = commonError('ServiceUnavailable');
  } else if ((err.statusCode ?? 500) < 500) {
    error = json
      ? commonError('SerializationException', 'The request could not be read.')
      : commonError('MalformedQueryString', 'The request could not be read.');
  } else {
    error = commonError('InternalFailure');
  }
  return inClientShape(request, error);
}
