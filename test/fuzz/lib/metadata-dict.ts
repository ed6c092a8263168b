/** What the metadata service and proxy fuzzers share: their dictionary, methods and one tolerated log line. */
import { EC2_VERSIONS, OPENSTACK_VERSIONS } from '../../../src/metadata/tree.js';
import { loadDictionary, type Dictionary } from './mutate.js';

/** The MAC the fuzzers' caller (127.0.0.1) has. */
export const MAC = '00:16:3e:aa:bb:cc';

/** Metadata paths, versions, addresses, TTLs and the headers the service and proxy read. */
const file = loadDictionary('metadata');
export const METADATA_DICT: Dictionary = {
  tokens: [...EC2_VERSIONS, ...OPENSTACK_VERSIONS, ...file.tokens],
  headerNames: file.headerNames,
};

/** Methods, valid and not (raw sockets carry any). */
export const METADATA_METHODS = [
  'GET',
  'GET',
  'GET',
  'HEAD',
  'PUT',
  'PUT',
  'POST',
  'DELETE',
  'OPTIONS',
  'CONNECT',
  'TRACE',
  'PATCH',
  'get',
  'PRI',
];

/**
 * Finding of this fuzzer (issue #16): a caller that closes its connection in the middle of a body
 * makes the proxy log `metadata proxy failed` at error level (the read rejects with `aborted`).
 * Nothing breaks, but a tenant can write error lines into the gateway's log at will; tolerated here
 * (and only that) until the proxy logs it as the caller's doing.
 */
export function clientWentAway(line: string): boolean {
  const entry = JSON.parse(line) as { msg?: string; err?: { message?: string; code?: string } };
  return entry.msg === 'metadata proxy failed' && entry.err?.message === 'aborted' && entry.err.code === 'ECONNRESET';
}
