/**
 * Fixed credentials for pure tests and golden files: an authority and user seeds made once with
 * @nats-io/nkeys and written down, so every render from them is byte for byte the same. Test-only
 * keys: nothing anywhere trusts them.
 */
import type { RoleName } from '../../core/members.js';
import { mintCredentials, type NodeCredentials } from '../../core/trust.js';

/** The fixed test authority's seed. */
export const TEST_AUTHORITY_SEED = 'SOAEDDVH7S4CPSVAI4XK4RGTTP4BVRDR3CJNTHQNAJHWLPWKV2ISDVLJKQ';

const USER_SEEDS = [
  'SUAFBYXKVO7GCIGEGF2HZRQQFWN33KKR55NTB2R7OSNAEBYQXDT4WRVQLU',
  'SUAOA3HOMMGYLXJQXBCGU22SQW3V2CC4DKNCXPO5W3UP2MMRXSA5HZO5OI',
  'SUANUFGCLV2ZPG7S7EE6LMW7NQZFZ3XYJYCBBELSHC546675R3PS4NP7IM',
  'SUACY7S7FDKZMGU2KE7Z7FM5GLHEOOL33METW4FBWC6OF2NF6AKXNBRCZI',
] as const;

/** Credentials for `node` with `roles`, the same every time (user key `index` of four). */
export function fixedCredentials(node: string, roles: readonly RoleName[], index = 0): NodeCredentials {
  return mintCredentials(TEST_AUTHORITY_SEED, node, roles, new Date('2026-12-01T00:00:00Z'), USER_SEEDS[index]);
}
