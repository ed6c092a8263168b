/** What the metadata service and proxy fuzzers share: their dictionary and methods. */
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
