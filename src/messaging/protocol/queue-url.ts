/**
 * Queue URLs: `<base>/<account>/<name>`, where base is the externally reachable origin. Incoming
 * URLs are resolved by their path only (clients behind NAT or a load balancer see other hosts), and
 * the account segment is not checked: a cloud has one account. A bare queue name is accepted too.
 */
import { sqsError } from '../errors.js';

/** The queue URL for `name`; `base` has no trailing slash. */
export function queueUrl(base: string, accountId: string, name: string): string {
  return `${base}/${accountId}/${encodeURIComponent(name)}`;
}

/**
 * The queue name in a QueueUrl: its last path segment, or the text itself when it has no slash.
 * @throws SqsError `InvalidAddress` when no name can be found.
 */
export function queueNameFromUrl(url: string): string {
  let path = url;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/.exec(url);
  if (scheme) path = url.slice(scheme[0].length);
  path = path.split(/[?#]/)[0] ?? '';
  const segments = path.split('/').filter((s) => s !== '');
  const last = segments[segments.length - 1];
  if (last === undefined || (scheme && segments.length < 2)) {
    throw sqsError('InvalidAddress', `The address ${url} is not valid for this endpoint.`);
  }
  try {
    return decodeURIComponent(last);
  } catch {
    throw sqsError('InvalidAddress', `The address ${url} is not valid for this endpoint.`);
  }
}

/** The queue name of a request addressed to a queue path (`/<account>/<name>`), if it is one. */
export function queueNameFromPath(rawPath: string): string | undefined {
  const segments = rawPath.split('/').filter((s) => s !== '');
  if (segments.length !== 2) return undefined;
  try {
    return decodeURIComponent(segments[1] ?? '');
  } catch {
    return undefined;
  }
}
