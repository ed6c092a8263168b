/**
 * The plan of `mammatus node add`: which files a new node gets (content, mode, and which service
 * must restart when one changes), whether its credentials are kept, which packages it needs (the
 * commands and the readers of their answers are in node-host.ts). Pure: every decision here is made
 * from text the executor (node-add.ts) read on the host, so the whole of it is unit-tested with
 * golden files; node-add.ts only carries bytes over SSH.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { Document } from 'yaml';
import { isHostPort } from '../../core/net.js';
import type { Member } from '../../core/contracts.js';
import { AGENT_TAG, ROLE_TAG, type RoleName } from '../../core/members.js';
import { AUTHORITY_FILE, CREDENTIALS_FILE, parseCredentials, userKey, type AdmittedNode, type NodeCredentials } from '../../core/trust.js';
import { NODE_BOOTSTRAP_PATHS, aptSourceText, serfNodeConfig } from '../../src/metadata/node-bootstrap.js';

/** The services a node runs. */
export type NodeService = 'serf' | 'agent';

/** Where everything lands on the host (the package's defaults: agent state_dir, Debian's serf unit). */
export const NODE_PATHS = {
  stateDir: '/var/lib/mammatus',
  credentials: `/var/lib/mammatus/${CREDENTIALS_FILE}`,
  authority: `/var/lib/mammatus/${AUTHORITY_FILE}`,
  serfConfig: NODE_BOOTSTRAP_PATHS.serfConfig,
  serfTags: NODE_BOOTSTRAP_PATHS.serfTags,
  agentConfig: NODE_BOOTSTRAP_PATHS.agentConfig,
  aptSources: NODE_BOOTSTRAP_PATHS.sources,
  /** Where a copied .deb is put before `apt-get install ./…`. */
  debDir: '/var/cache/mammatus',
  /** Hosts without systemd: pid files and logs of the two daemons node add starts. */
  runDir: '/run/mammatus-node',
  logDir: '/var/log/mammatus',
} as const;

/** The packages a node needs; mammatus-agent must have this CLI's version. */
export const NODE_PACKAGES = ['serf', 'mammatus-agent'] as const;

/** systemd unit of each service. */
export const UNITS: Readonly<Record<NodeService, string>> = { serf: 'serf.service', agent: 'mammatus-agent.service' };

/** One file the node must have. */
export interface PlannedFile {
  readonly path: string;
  /** Text (UTF-8) or bytes (a binary key). */
  readonly content: string | Buffer;
  readonly mode: number;
  /** Services to restart when this file changes. */
  readonly restarts: readonly NodeService[];
}

/** What the configure step writes. */
export interface ConfigInput {
  readonly node: string;
  readonly roles: readonly RoleName[];
  /** Serf's gossip key, as this controller's Serf uses it. */
  readonly gossipKey: string;
  /** The node's own Serf RPC secret (kept across runs, see {@link chooseRpcAuth}). */
  readonly rpcAuth: string;
  /** Serf addresses (`ip:port`) of the alive members (see {@link joinAddresses}). */
  readonly join: readonly string[];
  /** The host's current Serf config, whose `retry_join` is kept while one of its entries is alive. */
  readonly existingSerfConfig?: string;
  /** `--bind ADDR:PORT`: the node's gossip address. */
  readonly bind?: string;
  /** `--rpc ADDR:PORT`: the node's Serf RPC address (the agent is pointed at it). */
  readonly rpcAddr?: string;
}

/** Checks an `ADDR:PORT` flag; returns it or throws naming the flag. */
export function checkAddrPort(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  const i = value.lastIndexOf(':');
  const host = value.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  if (i <= 0 || isIP(host) === 0 || !isHostPort(value)) throw new Error(`${flag} must be IP:PORT, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * The config files: Serf's (gossip key, join list, RPC secret, addresses; 0600) and the agent's
 * drop-in pointing it at that Serf (0600: it holds the RPC secret). The role tag is in Serf's tags
 * file, which Serf itself rewrites (see {@link planTags}).
 */
export function planConfig(input: ConfigInput): PlannedFile[] {
  const serf = serfNodeConfig({
    gossipKey: input.gossipKey,
    hostname: input.node,
    join: chooseJoin(input.existingSerfConfig, input.join),
    rpcAuth: input.rpcAuth,
    bind: input.bind,
    rpcAddr: input.rpcAddr,
  });
  const agent = new Document({ serf: { ...(input.rpcAddr ? { rpc_addr: input.rpcAddr } : {}), rpc_auth: input.rpcAuth } });
  agent.commentBefore = ' Written by `mammatus node add`: how this node reaches its Serf.';
  return [
    { path: NODE_PATHS.serfConfig, content: `${JSON.stringify(serf, null, 2)}\n`, mode: 0o600, restarts: ['serf', 'agent'] },
    { path: NODE_PATHS.agentConfig, content: agent.toString(), mode: 0o600, restarts: ['agent'] },
  ];
}

/** The Serf addresses (`ip:port`) of the alive members running an agent or holding a role, but `node`. */
export function joinAddresses(members: readonly Member[], node: string): string[] {
  return members
    .filter((m) => m.status === 'alive' && m.name !== node && (m.tags[AGENT_TAG] !== undefined || m.tags[ROLE_TAG] !== undefined))
    .map((m) => `${m.addr}:${m.port}`);
}

/**
 * The join list to write, sorted: the host's current `retry_join` while at least one of its entries
 * is still an alive member (Serf needs only one to join, and rewriting the file restarts serf and
 * the agent: a re-run after another node joined must change nothing), else `alive`.
 */
export function chooseJoin(existingSerfConfig: string | undefined, alive: readonly string[]): string[] {
  let current: unknown;
  try {
    current = (JSON.parse(existingSerfConfig ?? '') as { retry_join?: unknown }).retry_join;
  } catch {
    current = undefined; // no config yet, or a broken one
  }
  const kept = Array.isArray(current) && current.every((j) => typeof j === 'string') ? current : [];
  return [...(kept.some((j) => alive.includes(j)) ? kept : alive)].sort();
}

/**
 * Serf's tags file with the node's role tag. Serf rewrites this file itself (the agent sets its
 * `mammatus` and `trust` tags with `serf tags`), so it is merged, not replaced: the new content when
 * the role tag differs or the file is missing or unreadable, else undefined (nothing to write).
 */
export function planTags(existing: string | undefined, roles: readonly RoleName[]): PlannedFile | undefined {
  let tags: Record<string, unknown> = {};
  try {
    const parsed: unknown = existing === undefined ? undefined : JSON.parse(existing);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) tags = parsed as Record<string, unknown>;
  } catch {
    tags = {}; // a broken file is replaced
  }
  const role = roles.join(',');
  if (existing !== undefined && tags.role === role && Object.keys(tags).length > 0) return undefined;
  return { path: NODE_PATHS.serfTags, content: `${JSON.stringify({ ...tags, role })}\n`, mode: 0o644, restarts: ['serf'] };
}

/**
 * The node's Serf RPC secret: the one its Serf config already has (a second run changes nothing),
 * else `fresh` (a new random token per node).
 */
export function chooseRpcAuth(existingSerfConfig: string | undefined, fresh: string): string {
  try {
    const auth = (JSON.parse(existingSerfConfig ?? '') as { rpc_auth?: unknown }).rpc_auth;
    if (typeof auth === 'string' && /^[\x21-\x7e]{16,}$/.test(auth)) return auth;
  } catch {
    // no config yet, or a broken one: a fresh secret
  }
  return fresh;
}

/** What to do about the node's credentials. */
export type CredentialsDecision =
  | { readonly action: 'keep'; readonly creds: NodeCredentials }
  /** Mint, keeping the host's user key when it has one from this authority (`seed`). */
  | { readonly action: 'mint'; readonly seed?: string; readonly why: string };

/**
 * Keeps the host's credentials when they are for `node` with exactly `roles`, signed by
 * `authority`, the roster lists the node with their user key, and they carry `caPin`'s root and
 * fingerprint (when the cluster has a CA); else mints new ones.
 */
export function decideCredentials(
  remoteText: string | undefined,
  roster: AdmittedNode | undefined,
  authority: string,
  node: string,
  roles: readonly RoleName[],
  caPin?: { readonly ca_fingerprint: string; readonly ca_root: string },
): CredentialsDecision {
  if (remoteText === undefined) return { action: 'mint', why: 'the host has none' };
  let creds: NodeCredentials;
  try {
    creds = parseCredentials(JSON.parse(remoteText), NODE_PATHS.credentials);
  } catch {
    return { action: 'mint', why: 'the host has unreadable credentials' };
  }
  if (creds.authority !== authority) return { action: 'mint', why: "the host's credentials are from another cluster" };
  const seed = creds.seed;
  if (creds.node !== node) return { action: 'mint', why: `the host's credentials are for ${creds.node}` };
  if (creds.roles.join(',') !== roles.join(','))
    return { action: 'mint', seed, why: `the roles change from ${creds.roles.join(',') || '-'}` };
  if (roster?.nkey !== userKey(creds))
    return { action: 'mint', seed, why: roster ? 'the roster lists another key' : 'the roster does not list it' };
  if (caPin && creds.ca_fingerprint !== caPin.ca_fingerprint) return { action: 'mint', seed, why: "the cluster CA's root is to be pinned" };
  // Credentials from before `ca_root` existed: the node could not verify its first connection.
  if (caPin && creds.ca_root !== caPin.ca_root) return { action: 'mint', seed, why: "the cluster CA's root is to be carried" };
  return { action: 'keep', creds };
}

/** The credentials files for the host (secret 0600, the public authority key 0644). */
export function planCredentials(creds: NodeCredentials): PlannedFile[] {
  return [
    { path: NODE_PATHS.credentials, content: `${JSON.stringify(creds, null, 2)}\n`, mode: 0o600, restarts: ['agent'] },
    { path: NODE_PATHS.authority, content: `${creds.authority}\n`, mode: 0o644, restarts: ['agent'] },
  ];
}

/** The apt source and key files for `--apt-repo URL --apt-key FILE` (the key's format by its bytes). */
export function planAptSource(repoUrl: string, key: Buffer): PlannedFile[] {
  const armored = key.subarray(0, 64).toString('latin1').includes('-----BEGIN PGP PUBLIC KEY BLOCK-----');
  const keyPath = `/etc/apt/keyrings/mammatus.${armored ? 'asc' : 'gpg'}`;
  const url = new URL(repoUrl).href;
  return [
    { path: keyPath, content: key, mode: 0o644, restarts: [] },
    { path: NODE_PATHS.aptSources, content: aptSourceText(url, keyPath), mode: 0o644, restarts: [] },
  ];
}

/** Hex sha256 of a file's content, as `sha256sum` prints it. */
export function sha256(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Services whose files changed in `changed`. */
export function restartsOf(changed: readonly PlannedFile[]): Set<NodeService> {
  return new Set(changed.flatMap((f) => f.restarts));
}

/** A readable listing of planned files (for golden files and `--json` debugging). */
export function describeFiles(files: readonly PlannedFile[]): string {
  return files
    .map((f) => {
      const body = typeof f.content === 'string' ? f.content : `(${f.content.length} bytes, sha256 ${sha256(f.content)})\n`;
      return `== ${f.path} (mode ${f.mode.toString(8).padStart(4, '0')}; restarts: ${f.restarts.join(',') || '-'})\n${body}`;
    })
    .join('\n');
}
