/**
 * The request pipeline, independent of the HTTP server: detect → authenticate → parse → check →
 * engine → serialize, and every failure rendered in the shape the client speaks. `http.ts` is only
 * the node:http shell around `handleRequest`.
 */
import { randomUUID } from 'node:crypto';
import type { AccessControl } from '../access.js';
import { countRequest, type RequestSeen } from '../metrics.js';
import { commonError, toAwsError, type MessagingError, type Service, type WireProtocol } from '../errors.js';
import type { SnsEngine } from '../sns-engine.js';
import { hasSignature, readCredentialScope, type SigV4Verifier, type SignedRequest } from '../sigv4.js';
import type { RequestContext, SqsEngine } from '../sqs-engine.js';
import { detectRequest } from './detect.js';
import { jsonFields, parseJsonBody, queryFields, snsFieldErrors, sqsFieldErrors } from './fields.js';
import { queueNameFromPath } from './queue-url.js';
import { isSnsAction, snsQueryParsers, type SnsAction } from './sns-query.js';
import { snsRunners, snsXmlResponse, SNS_XMLNS } from './sns-run.js';
import { toSqsJson, sqsJsonParsers } from './sqs-json.js';
import { sqsQueryParsers } from './sqs-query.js';
import { sqsRunners } from './sqs-run.js';
import { isSqsAction, type SqsAction } from './sqs-types.js';
import { sqsXmlResponse, SQS_XMLNS } from './sqs-xml.js';
import { el, renderXml } from './xml.js';

/** A request as the HTTP layer received it. */
export interface WireRequest extends SignedRequest {
  /** `scheme://host[:port]` the client used; the queue URL base unless one is configured. */
  readonly origin: string;
}

/** A response ready to send. */
export interface WireResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Everything the pipeline needs. */
export interface HandlerDeps {
  readonly sqs: SqsEngine;
  readonly sns: SnsEngine;
  /** Undefined when `messaging.verify_signatures` is false. */
  readonly verifier?: SigV4Verifier;
  /** The credentials' `allow:` scopes; applied to verified callers only. */
  readonly access?: AccessControl;
  readonly accountId: string;
  readonly region: string;
  /** `messaging.base_url`; else each request's origin is used. */
  readonly baseUrl?: string;
  /** Called for failures answered with a 5xx (the cause is logged, never sent). */
  readonly onInternalError?: (err: MessagingError, requestId: string) => void;
}

const ALLOWED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST']);

// SNS confirmation and unsubscribe links are plain GETs that the subscriber (or a browser) follows.
const UNSIGNED_SNS_ACTIONS: ReadonlySet<string> = new Set(['ConfirmSubscription', 'Unsubscribe']);

/** Runs one request to completion and counts it (src/messaging/metrics.ts); never throws. */
export async function handleRequest(req: WireRequest, deps: HandlerDeps, signal: AbortSignal): Promise<WireResponse> {
  const startedAt = performance.now();
  const seen: RequestSeen = { service: 'sqs', action: undefined, outcome: 'ok' };
  const response = await pipeline(req, deps, signal, seen);
  countRequest(seen, startedAt);
  return response;
}

/** The pipeline; fills in `seen` as it learns the service, the action and the outcome. */
async function pipeline(req: WireRequest, deps: HandlerDeps, signal: AbortSignal, seen: RequestSeen): Promise<WireResponse> {
  const requestId = randomUUID();
  let wire: WireProtocol = 'query';
  let service: Service = 'sqs';
  try {
    const detected = detectRequest(req);
    ({ wire, service } = detected);
    seen.service = service;
    seen.action = detected.action;
    // Both protocols are GET or POST (HEAD is a GET); any other method is answered in the client's shape.
    if (!ALLOWED_METHODS.has(req.method))
      throw commonError('InvalidAction', `The HTTP method ${req.method} is not supported; use POST or GET.`);
    const unsignedLink = service === 'sns' && req.method === 'GET' && UNSIGNED_SNS_ACTIONS.has(detected.action ?? '') && !hasSignature(req);
    let accessKeyId: string | undefined;
    let authenticated = true;
    if (deps.verifier && !unsignedLink) accessKeyId = deps.verifier.verify(req, service).accessKeyId;
    else if (deps.verifier) authenticated = false;
    else accessKeyId = readCredentialScope(req)?.accessKeyId;
    if (detected.parseError) throw detected.parseError;

    const ctx: RequestContext = { requestId, accountId: deps.accountId, region: deps.region, accessKeyId, authenticated, signal };
    const action = detected.action;
    if (action === undefined) throw commonError('MissingAction', 'The request must contain the parameter Action.');
    // Scopes bind only a signature that was verified; the queues and topics a request names are
    // known once it is parsed, so the check runs between parsing and the engine.
    const verifiedKey = deps.verifier && authenticated ? accessKeyId : undefined;
    const authorize: Authorize = (parsed) => {
      if (deps.access && verifiedKey !== undefined) deps.access.check(verifiedKey, service, action, parsed);
    };
    if (service === 'sns') {
      if (!isSnsAction(action)) throw invalidAction(action);
      return await runSns(action, detected.params, deps.sns, ctx, authorize);
    }
    if (!isSqsAction(action)) throw invalidAction(action);
    const baseUrl = deps.baseUrl ?? req.origin;
    if (wire === 'json') return await runSqsJson(action, req.body, deps.sqs, ctx, baseUrl, authorize);
    return await runSqsQuery(action, detected.params, queueNameFromPath(req.rawPath), deps.sqs, ctx, baseUrl, authorize);
  } catch (err) {
    const error = toAwsError(err, service);
    seen.outcome = error.code;
    if (error.def.status >= 500) deps.onInternalError?.(error, requestId);
    return renderError(error, wire, service, requestId);
  }
}

/** Throws when the caller may not run the action on what the parsed request names. */
type Authorize = (parsed: object) => void;

function invalidAction(action: string): MessagingError {
  return commonError('InvalidAction', `The action ${action} is not valid for this endpoint.`);
}

async function runSqsQuery<A extends SqsAction>(
  action: A,
  params: ReadonlyMap<string, string>,
  pathQueue: string | undefined,
  engine: SqsEngine,
  request: RequestContext,
  baseUrl: string,
  authorize: Authorize,
): Promise<WireResponse> {
  const parsed = sqsQueryParsers[action](queryFields(params, sqsFieldErrors), pathQueue);
  authorize(parsed);
  const output = await sqsRunners[action](engine, parsed, { request, baseUrl });
  return xmlResponse(renderXml(sqsXmlResponse(action, output, request.requestId)), request.requestId);
}

async function runSqsJson<A extends SqsAction>(
  action: A,
  body: Uint8Array,
  engine: SqsEngine,
  request: RequestContext,
  baseUrl: string,
  authorize: Authorize,
): Promise<WireResponse> {
  const parsed = sqsJsonParsers[action](jsonFields(parseJsonBody(Buffer.from(body).toString('utf8')), sqsFieldErrors));
  authorize(parsed);
  const output = await sqsRunners[action](engine, parsed, { request, baseUrl });
  return { status: 200, headers: jsonHeaders(request.requestId), body: toSqsJson(action, output) };
}

async function runSns<A extends SnsAction>(
  action: A,
  params: ReadonlyMap<string, string>,
  engine: SnsEngine,
  ctx: RequestContext,
  authorize: Authorize,
): Promise<WireResponse> {
  const parsed = snsQueryParsers[action](queryFields(params, snsFieldErrors));
  authorize(parsed);
  const output = await snsRunners[action](engine, parsed, ctx);
  return xmlResponse(renderXml(snsXmlResponse(action, output, ctx.requestId)), ctx.requestId);
}

function xmlResponse(body: string, requestId: string): WireResponse {
  return { status: 200, headers: { 'content-type': 'text/xml', 'x-amzn-RequestId': requestId }, body };
}

function jsonHeaders(requestId: string): Record<string, string> {
  return { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-RequestId': requestId };
}

/**
 * An error in the client's shape. Query: `<ErrorResponse><Error><Type/><Code/><Message/><Detail/>
 * </Error><RequestId/></ErrorResponse>`. JSON: `{"__type", "message"}` plus
 * `x-amzn-query-error: <Code>;<Sender|Receiver>`, from which query-compatible SDKs take the code.
 */
export function renderError(error: MessagingError, wire: WireProtocol, service: Service, requestId: string): WireResponse {
  const message = error.messageFor(wire);
  if (wire === 'json') {
    return {
      status: error.def.status,
      headers: { ...jsonHeaders(requestId), 'x-amzn-query-error': `${error.code};${error.def.fault}` },
      body: JSON.stringify({ __type: error.def.jsonType, message }),
    };
  }
  const document = renderXml({
    name: 'ErrorResponse',
    xmlns: service === 'sns' ? SNS_XMLNS : SQS_XMLNS,
    children: [
      el('Error', [el('Type', error.def.fault), el('Code', error.code), el('Message', message), el('Detail', [])]),
      el('RequestId', requestId),
    ],
  });
  return { status: error.def.status, headers: { 'content-type': 'text/xml', 'x-amzn-RequestId': requestId }, body: document };
}
