/**
 * Which API and wire form a request uses, decided per request because one port serves SQS Query,
 * SQS JSON 1.0 and SNS Query:
 *
 * - JSON 1.0: `Content-Type: application/x-amz-json-1.0` or an `X-Amz-Target` header; the target
 *   must be `AmazonSQS.<Action>` (SNS has no JSON protocol).
 * - Query: form parameters from the query string and, for POST, the form body; `Action=` names the
 *   operation. SQS or SNS: the signing name in the credential scope when there is one (it is what
 *   the client believes it talks to, and AddPermission/RemovePermission exist in both), else
 *   `Version` (2012-11-05 / 2010-03-31), else the action name.
 */
import type { MessagingError, Service, WireProtocol } from '../errors.js';
import { readCredentialScope, type RequestHead, type SignedRequest } from '../sigv4.js';
import { mergeParams, parseForm, type Params } from './form.js';
import { isSnsAction } from './sns-query.js';
import { isSqsAction } from './sqs-types.js';

/** What detection found; `parseError` is raised after authentication, as AWS orders them. */
export interface Detected {
  readonly wire: WireProtocol;
  readonly service: Service;
  /** The action as sent (may be unknown); undefined when none was sent. */
  readonly action: string | undefined;
  /** Query only: the decoded parameters. */
  readonly params: Params;
  readonly parseError?: MessagingError;
}

const JSON_TYPE = 'application/x-amz-json-1.0';
const SQS_TARGET = 'AmazonSQS.';

function headerText(req: SignedRequest, name: string): string | undefined {
  const value = req.headers[name];
  return value === undefined ? undefined : typeof value === 'string' ? value : value.join(',');
}

/** True when the headers say JSON 1.0 (usable before the body is read, e.g. for a too-large body). */
export function isJsonRequest(headers: SignedRequest['headers']): boolean {
  const type = headers['content-type'];
  const text = typeof type === 'string' ? type : (type?.[0] ?? '');
  return text.split(';')[0]?.trim().toLowerCase() === JSON_TYPE || headers['x-amz-target'] !== undefined;
}

/** Detects the wire form, service and action of `req`. */
export function detectRequest(req: SignedRequest): Detected {
  if (isJsonRequest(req.headers)) {
    const target = headerText(req, 'x-amz-target') ?? '';
    const action = target.startsWith(SQS_TARGET) ? target.slice(SQS_TARGET.length) : target || undefined;
    return { wire: 'json', service: 'sqs', action, params: new Map() };
  }
  let params: Params = new Map();
  let parseError: MessagingError | undefined;
  try {
    const type = (headerText(req, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    const formBody = req.method === 'POST' && (type === 'application/x-www-form-urlencoded' || type === '');
    params = mergeParams(parseForm(req.rawQuery), formBody ? parseForm(Buffer.from(req.body).toString('utf8')) : new Map());
  } catch (err) {
    parseError = err as MessagingError;
  }
  const action = params.get('Action') || undefined;
  return { wire: 'query', service: serviceOf(req, params, action), action, params, parseError };
}

/**
 * Wire form and service from what arrives before the body (headers and query string), for
 * answering a request that is refused before its body is read. A Query POST whose only hint is
 * `Version` in the body is taken for SQS; the error code is the same, only the XML namespace differs.
 */
export function detectFromHead(head: RequestHead): { readonly wire: WireProtocol; readonly service: Service } {
  if (isJsonRequest(head.headers)) return { wire: 'json', service: 'sqs' };
  let params: Params = new Map();
  try {
    params = parseForm(head.rawQuery);
  } catch {
    // An unreadable query string is the pipeline's error to report; the service falls back to SQS.
  }
  return { wire: 'query', service: serviceOf(head, params, params.get('Action') || undefined) };
}

function serviceOf(req: RequestHead, params: Params, action: string | undefined): Service {
  const signedFor = readCredentialScope(req)?.service;
  if (signedFor === 'sns' || signedFor === 'sqs') return signedFor;
  const version = params.get('Version');
  if (version === '2010-03-31') return 'sns';
  if (version === '2012-11-05') return 'sqs';
  return action !== undefined && isSnsAction(action) && !isSqsAction(action) ? 'sns' : 'sqs';
}
