/**
 * Node identities: what admission gives a node and how anyone checks it. Pure but for the file helpers.
 *
 * A cluster has one *authority*, an ed25519 key pair (an nkeys operator key) created with the first
 * controller. Admitting a node mints its *credentials*: a NATS user nkey of its own (the controllers
 * list its public key, with the permissions of its roles, in nats-server's `authorization`), and a
 * *trust tag* — the authority's signature over the node's name, admitted roles and user key — that
 * the node publishes as the Serf tag `trust`. Every admitted node holds the authority's public key,
 * so it can tell an admitted controller from a member that only carries the `role` tag. Controllers
 * also hold the authority's seed: they admit nodes and derive the route secret from it.
 */
import { createHmac } from 'node:crypto';
import { stat, readFile } from 'node:fs/promises';
import { privateModeProblem } from './files.js';
import { isCaFingerprint, pinnedRootProblem } from './ca.js';
import { createOperator, createUser, fromPublic, fromSeed } from '@nats-io/nkeys';
import type { Member } from './contracts.js';
import { ROLE_NAMES, type RoleName } from './members.js';

/** The Serf tag carrying a node's proof of admission. */
export const TRUST_TAG = 'trust';

/** The credentials file under `state_dir` (mode 0600). */
export const CREDENTIALS_FILE = 'credentials.json';

/** The authority's public key under `state_dir` (mode 0644: the CLI checks trust tags with it). */
export const AUTHORITY_FILE = 'authority.pub';

/** The KV bucket of admitted nodes (the roster), written by controllers only. */
export const ROSTER_BUCKET = 'mammatus-nodes';

/** Subject of the registry's write API for the compute node `<node>` (its only writes). */
export const REGISTRY_NODE_SUBJECT = 'mammatus.registry.node';

/**
 * The volume API of a storage or compute node (`<prefix>.<node name>`, request/reply, answered by
 * the controllers; src/registry/volume-writes.ts): list its volumes, report what it serves.
 */
export const VOLUME_NODE_SUBJECT = 'mammatus.volumes.node';

/** Where the controllers tell a node (`<prefix>.<node name>`) that one of its volumes changed. */
export const VOLUME_CHANGED_SUBJECT = 'mammatus.volumes.changed';

/**
 * Where each agent answers the controllers' metrics requests (`<prefix>.<node name>`, request/reply;
 * issue 22): a node may subscribe to its own subject only, and only controllers may publish.
 */
export const METRICS_SUBJECT = 'mammatus.metrics';

/**
 * The inbox prefix of a NATS user: its replies come only there, where no other user may listen.
 * 16 characters of its key (80 random bits): a shorter subject is less for the server to match.
 */
export const inboxPrefix = (nkey: string): string => `_INBOX.${nkey.slice(1, 17)}`;

/** What admission gives a node; kept in `<state_dir>/credentials.json`. */
export interface NodeCredentials {
  readonly version: 1;
  /** The Serf name the node was admitted as. */
  readonly node: string;
  /** The roles it may take; a `role` tag asking for more is reported, not obeyed. */
  readonly roles: readonly RoleName[];
  /** The seed of its NATS user nkey (`SU…`). Secret. */
  readonly seed: string;
  /** The authority's public key (`O…`): what trust tags are checked with. */
  readonly authority: string;
  /** The value of its Serf tag `trust`. */
  readonly tag: string;
  /** The authority's seed (`SO…`), controllers only. Secret. */
  readonly authority_seed?: string;
  readonly admitted_at: string;
  /** SHA-256 (hex lowercase) of the cluster CA's root, pinned at admission when a CA exists (issue 20). */
  readonly ca_fingerprint?: string;
  /**
   * The root itself (one PEM certificate) matching `ca_fingerprint`; the agent writes it to `ca.crt`
   * before any NATS connection. Neither is covered by the trust tag: both travel with the credentials.
   */
  readonly ca_root?: string;
}

/** An admitted node as the controllers list it (the roster; nothing secret). */
export interface AdmittedNode {
  readonly node: string;
  readonly roles: readonly RoleName[];
  /** Its NATS user public key (`U…`). */
  readonly nkey: string;
  readonly admitted_at: string;
  /**
   * Set when the node was admitted by a planned host's join (issue 19): that host's instance id.
   * Only the same host's later join may replace the entry (a `node add` writes it without).
   */
  readonly host_id?: string;
}

/** A node name that can be a KV key, a NATS server name and a Serf name. */
const NODE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** Throws unless `name` can be admitted. */
export function checkNodeName(name: string): void {
  if (!NODE_NAME.test(name)) throw new Error(`node name ${JSON.stringify(name)} cannot be admitted: use 1-128 of A-Z a-z 0-9 . _ -`);
}

/** Creates a new cluster authority; returns its seed (`SO…`). */
export function createAuthority(): string {
  return text(createOperator().getSeed());
}

/** The public key of an authority seed. */
export function authorityKey(authoritySeed: string): string {
  return fromSeed(bytes(authoritySeed)).getPublicKey();
}

const signedText = (node: string, roles: readonly RoleName[], nkey: string) => `mammatus-trust/1\n${node}\n${roles.join(',')}\n${nkey}`;

/** What the authority signs for a node: its sorted roles, its key, the trust tag. */
function signNode(authority: ReturnType<typeof fromSeed>, node: string, roles: readonly RoleName[], nkey: string) {
  checkNodeName(node);
  const sorted = ROLE_NAMES.filter((r) => roles.includes(r));
  const signature = Buffer.from(authority.sign(Buffer.from(signedText(node, sorted, nkey)))).toString('base64url');
  return { roles: sorted, tag: `${sorted.join('+') || '-'}.${nkey}.${signature}` };
}

/**
 * Mints a node's credentials, signed by the authority. A controller also gets the authority's seed.
 * `nkeySeed` keeps a node's existing user key (re-admission with other roles); by default a new one.
 */
export function mintCredentials(
  authoritySeed: string,
  node: string,
  roles: readonly RoleName[],
  now: Date,
  nkeySeed?: string,
): NodeCredentials {
  checkNodeName(node);
  const authority = fromSeed(bytes(authoritySeed));
  const user = nkeySeed ? fromSeed(bytes(nkeySeed)) : createUser();
  const signed = signNode(authority, node, roles, user.getPublicKey());
  return {
    version: 1,
    node,
    roles: signed.roles,
    seed: text(user.getSeed()),
    authority: authority.getPublicKey(),
    tag: signed.tag,
    ...(signed.roles.includes('controller') ? { authority_seed: authoritySeed } : {}),
    admitted_at: now.toISOString(),
  };
}

/** True when `nkey` is a NATS user public key (`U…`, checksum included). */
export function isUserKey(nkey: string): boolean {
  if (!/^U[A-Z2-7]{55}$/.test(nkey)) return false;
  try {
    fromPublic(nkey);
    return true;
  } catch {
    return false;
  }
}

/**
 * Admits a node whose user key was made elsewhere (a host joining over the network keeps its seed):
 * its credentials without the seed, which the node adds itself. Never carries the authority's seed,
 * so not for controllers. @throws when `nkey` is not a user public key or `roles` has `controller`.
 */
export function mintForKey(
  authoritySeed: string,
  node: string,
  roles: readonly RoleName[],
  now: Date,
  nkey: string,
): Omit<NodeCredentials, 'seed' | 'authority_seed'> & { readonly nkey: string } {
  if (!isUserKey(nkey)) throw new Error('not a NATS user public key (U…)');
  if (roles.includes('controller')) throw new Error("a controller's credentials carry the authority's seed: admit it with node add");
  const authority = fromSeed(bytes(authoritySeed));
  const signed = signNode(authority, node, roles, nkey);
  return {
    version: 1,
    node,
    roles: signed.roles,
    authority: authority.getPublicKey(),
    tag: signed.tag,
    nkey,
    admitted_at: now.toISOString(),
  };
}

/** The user public key (`U…`) of credentials. */
export function userKey(creds: Pick<NodeCredentials, 'seed'>): string {
  return fromSeed(bytes(creds.seed)).getPublicKey();
}

/** The roster entry of credentials. */
export function admittedNode(creds: NodeCredentials): AdmittedNode {
  return { node: creds.node, roles: creds.roles, nkey: userKey(creds), admitted_at: creds.admitted_at };
}

/** What a valid trust tag proves. */
export interface TrustProof {
  readonly roles: readonly RoleName[];
  readonly nkey: string;
}

/**
 * Checks a member's `trust` tag against the authority's public key: the admitted roles and user
 * key when the authority signed them for this very name, else undefined. Never throws.
 */
export function verifyTrustTag(authority: string, node: string, tag: string | undefined): TrustProof | undefined {
  if (!tag) return undefined;
  const parts = tag.split('.');
  if (parts.length !== 3) return undefined;
  const [roleList, nkey, signature] = parts as [string, string, string];
  const roles = roleList === '-' ? [] : roleList.split('+');
  if (!roles.every((r) => (ROLE_NAMES as readonly string[]).includes(r))) return undefined;
  try {
    const ok = fromPublic(authority).verify(Buffer.from(signedText(node, roles as RoleName[], nkey)), Buffer.from(signature, 'base64url'));
    return ok ? { roles: roles as RoleName[], nkey } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Marks each member with the roles its trust tag proves (`Member.trusted`; empty when the tag is
 * missing, forged or made for another name). Without an authority (this node was never admitted)
 * members are returned as they are. `cache` keeps verdicts across calls (one signature check per
 * distinct tag, not per membership change).
 */
export function annotateTrust(members: readonly Member[], authority: string | undefined, cache?: Map<string, readonly string[]>): Member[] {
  if (!authority) return [...members];
  return members.map((m) => {
    const tag = m.tags[TRUST_TAG];
    const key = `${authority}\n${m.name}\n${tag ?? ''}`;
    let trusted = cache?.get(key);
    if (!trusted) {
      trusted = verifyTrustTag(authority, m.name, tag)?.roles ?? [];
      if (cache && cache.size > 10_000) cache.clear();
      cache?.set(key, trusted);
    }
    return { ...m, trusted };
  });
}

/**
 * The password of NATS route connections between controllers: derived from the authority's seed,
 * so every controller knows it and nothing else has to be shared.
 */
export function routePassword(authoritySeed: string): string {
  return createHmac('sha256', authoritySeed).update('mammatus nats route').digest('base64url');
}

/** Checks the shape of parsed credentials; throws naming what is wrong. */
export function parseCredentials(json: unknown, where: string): NodeCredentials {
  const c = json as Partial<NodeCredentials> | null;
  const fail = (what: string): never => {
    throw new Error(`${where}: not mammatus node credentials (${what})`);
  };
  if (typeof c !== 'object' || c === null || c.version !== 1) fail('version');
  for (const key of ['node', 'seed', 'authority', 'tag', 'admitted_at'] as const) if (typeof c![key] !== 'string') fail(key);
  const roles: unknown = c!.roles;
  if (!Array.isArray(roles) || !roles.every((r: unknown) => typeof r === 'string' && (ROLE_NAMES as readonly string[]).includes(r)))
    fail('roles');
  if (!c!.seed!.startsWith('SU') || !c!.authority!.startsWith('O')) fail('keys');
  if (c!.ca_fingerprint !== undefined && !isCaFingerprint(c!.ca_fingerprint)) fail('ca_fingerprint');
  const rootProblem = c!.ca_root === undefined ? undefined : pinnedRootProblem(c!.ca_root, c!.ca_fingerprint);
  if (rootProblem) fail(`ca_root: ${rootProblem}`);
  let derived: string | undefined;
  try {
    userKey({ seed: c!.seed! });
    derived = c!.authority_seed === undefined ? undefined : authorityKey(c!.authority_seed);
  } catch {
    fail('keys');
  }
  if (derived !== undefined && derived !== c!.authority) fail('authority_seed');
  if (!verifyTrustTag(c!.authority!, c!.node!, c!.tag)) fail('the trust tag is not signed by its authority');
  return c as NodeCredentials;
}

/**
 * Reads credentials, refusing a file that others can read (as ssh refuses a private key): its
 * secrets are then no longer the node's alone. Undefined when the file does not exist.
 */
export async function readCredentials(path: string): Promise<NodeCredentials | undefined> {
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const problem = privateModeProblem(path, mode);
  if (problem) throw new Error(problem);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: not mammatus node credentials (${(err as Error).message})`, { cause: err });
  }
  return parseCredentials(json, path);
}

const text = (b: Uint8Array) => Buffer.from(b).toString('ascii');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'ascii'));
