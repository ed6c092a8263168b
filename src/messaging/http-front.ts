/**
 * What the SQS/SNS HTTP server does before the pipeline (`protocol/handle.ts`) runs, on plain
 * `node:http` requests: reading the body under the size limit and the shared body budget, telling
 * an undecodable target or a broken media type apart, and answering what is refused there in the
 * protocol and service the client speaks. The rules are those of the fastify front end this
 * replaced (issue 23), so clients see the same answers.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { BodyBudget } from '../../core/http-limits.js';
import { commonError, snsError, sqsError, type MessagingError, type Service } from './errors.js';
import { countRequest } from './metrics.js';
import { isJsonRequest } from './protocol/detect.js';
import { renderError, type WireResponse } from './protocol/handle.js';
import { readCredentialScope, type RequestHead } from './sigv4.js';

/** Why a request was refused before the pipeline. */
export type FrontEndFailure = 'too-large' | 'budget' | 'malformed' | 'internal';

/**
 * Bodies up to this size are counted against the budget whole, from their `content-length`, before
 * they arrive. Small enough that connections announcing bodies they never send cannot use the
 * budget up (maxConnections × 16 KiB = 32 MiB, half of it); larger bodies are counted as they come.
 */
const UPFRONT_BODY_BYTES = 16 * 1024;

/** The declared length of a small body without chunked framing (Node refuses a request with both). */
export function upfrontLength(req: IncomingMessage): number | undefined {
  const { headers } = req;
  const raw = headers['content-length'];
  if (headers['transfer-encoding'] !== undefined || typeof raw !== 'string' || raw === '') return undefined;
  const length = Number(raw);
  return Number.isInteger(length) && length >= 0 && length <= UPFRONT_BODY_BYTES ? length : undefined;
}

/** Method, raw path, raw query and headers: what SigV4 and the pipeline read besides the body. */
export function requestHead(req: IncomingMessage): RequestHead {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return {
    method: req.method ?? 'GET',
    rawPath: q < 0 ? url : url.slice(0, q),
    rawQuery: q < 0 ? '' : url.slice(q + 1),
    headers: req.headers,
  };
}

/**
 * How the request target routes: `bad` when its path cannot be percent-decoded (`/%e9/`) or is
 * neither absolute nor origin form, `none` for the asterisk form (`OPTIONS *`), which no path matches.
 */
export function targetKind(url: string): 'ok' | 'bad' | 'none' {
  let path = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    if (url === '*') return 'none';
    const scheme = /^https?:\/\/[^/?#]*/i.exec(url);
    if (!scheme) return 'bad';
    path = url.slice(scheme[0].length);
  }
  const pct = path.indexOf('%');
  if (pct < 0) return 'ok';
  const end = path.slice(1).search(/[?#]/);
  if (end >= 0 && pct > end + 1) return 'ok';
  try {
    decodeURI(end < 0 ? path : path.slice(0, end + 1));
    return 'ok';
  } catch {
    return 'bad';
  }
}

const TOKEN = /^[\w!#$%&'*+.^`|~-]+$/;
const SUBTYPE = /^[\w!#$%&'*+.^`|~-]+\s*$/;

/** False for a `content-type` that is not `type/subtype[; params]` in token characters (RFC 9110). */
export function validMediaType(value: string): boolean {
  const semi = value.indexOf(';');
  const media = semi < 0 ? value : value.slice(0, semi);
  const slash = media.indexOf('/');
  if (slash < 0) return false;
  return TOKEN.test(media.slice(0, slash).trimStart()) && SUBTYPE.test(media.slice(slash + 1).trimEnd());
}

/** Bytes of one request's body held against the budget; given back when its response closes. */
export interface BodyHold {
  bytes: number;
}

/**
 * Reads the body of `req`: a failure once it passes `limit` bytes or the budget (when `hold` is
 * counted chunk by chunk, `counted`), or when it ends short of its `content-length` or breaks off.
 * On a failure the rest is left unread (the caller answers with `connection: close`).
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  budget: BodyBudget,
  hold: BodyHold,
  counted: boolean,
): Promise<Buffer | FrontEndFailure> {
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: Buffer | FrontEndFailure) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onBroken);
      req.off('close', onBroken);
      // A body cut off stays flowing (its bytes dropped) until the connection closes after the answer.
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      if (counted) {
        if (!budget.take(chunk.length)) return done('budget');
        hold.bytes += chunk.length;
      }
      size += chunk.length;
      if (size > limit) return done('too-large');
      chunks.push(chunk);
    };
    const onEnd = () =>
      done(declared !== undefined && !Number.isNaN(declared) && size !== declared ? 'malformed' : Buffer.concat(chunks, size));
    const onBroken = () => done('malformed');
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onBroken);
    req.on('close', onBroken);
  });
}

/** `error` rendered in the protocol and service the request's headers point to. */
export function inClientShape(req: IncomingMessage, error: MessagingError): WireResponse {
  const json = isJsonRequest(req.headers);
  const service: Service = !json && signedFor(req) === 'sns' ? 'sns' : 'sqs';
  // Refused before the pipeline (a method not served, a body too large or unreadable): counted here.
  countRequest({ service, action: undefined, outcome: error.code });
  return renderError(error, json ? 'json' : 'query', service, randomUUID());
}

/** A request refused before the pipeline (body too large, over the budget, broken framing or target), in the client's shape. */
export function frontEndError(failure: FrontEndFailure, req: IncomingMessage, limit: number): WireResponse {
  const json = isJsonRequest(req.headers);
  let error: MessagingError;
  if (failure === 'too-large') {
    const tooLong = `Request body must be shorter than ${limit} bytes.`;
    if (!json && signedFor(req) === 'sns') error = snsError('InvalidParameter', `Invalid parameter: ${tooLong}`);
    else if (json && String(req.headers['x-amz-target']).endsWith('.SendMessageBatch')) error = sqsError('BatchRequestTooLong');
    else error = sqsError('InvalidParameterValue', `One or more parameters are invalid. Reason: ${tooLong}`);
  } else if (failure === 'budget') {
    error = commonError('ServiceUnavailable');
  } else if (failure === 'malformed') {
    error = json
      ? commonError('SerializationException', 'The request could not be read.')
      : commonError('MalformedQueryString', 'The request could not be read.');
  } else {
    error = commonError('InternalFailure');
  }
  return inClientShape(req, error);
}

function signedFor(req: IncomingMessage): string | undefined {
  return readCredentialScope({ method: req.method ?? 'GET', rawPath: '/', rawQuery: '', headers: req.headers })?.service;
}
