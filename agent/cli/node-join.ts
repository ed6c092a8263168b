/**
 * `mammatus node join --secret-file F`: run on a planned bare-metal host (issue 19), by its
 * cloud-init, to become a node. It makes its own NATS user key and an X25519 key, asks the metadata
 * service (through the gateway's proxy, which vouches for its MAC) to exchange its one-time join
 * secret at the controllers, opens the sealed answer, checks it (the trust tag must verify and name
 * its own key), and writes its credentials (with its own seed), the authority's key, Serf's config
 * (gossip key, controllers to join, RPC secret), the agent's drop-in and the role tag. Restarting
 * serf and the agent is the caller's (cloud-init's) next step.
 *
 * The secret is read from a file, never taken on the command line, never printed or logged. The
 * exchange: `PUT /latest/api/token`, then `POST /mammatus/join` with the token and the JSON
 * `{secret, nkey, box}`; the answer is a HostJoinAnswer (200, `ok: false` on a refusal; 404 when
 * the metadata service does not know this machine).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { JOIN_SECRET, type HostJoinAnswer, type HostJoinGrant } from '../../core/host-record.js';
import { writeFileAtomic } from '../../core/files.js';
import { errorMessage } from '../../core/errors.js';
import {
  AUTHORITY_FILE,
  CREDENTIALS_FILE,
  parseCredentials,
  readCredentials,
  verifyTrustTag,
  type NodeCredentials,
} from '../../core/trust.js';
import { newBoxKeyPair, openSealed } from '../../src/hosts/sealed.js';
import { UsageError, type CliIo } from './common.js';
import { NODE_PATHS, chooseRpcAuth, planConfig, planCredentials, planTags, type PlannedFile } from './node-plan.js';

/** `node join` flags. */
export interface NodeJoinOptions {
  secretFile: string;
  metadataUrl?: string;
  stateDir?: string;
  serfConfig?: string;
  serfTags?: string;
  agentConfig?: string;
  json?: boolean;
}

/** The link-local metadata address (the gateway's proxy). */
export const DEFAULT_METADATA_URL = 'http://169.254.169.254';
/** The largest answer read (a sealed grant is about 1 KiB). */
const MAX_ANSWER_BYTES = 64 * 1024;
/** Tries of the exchange while the path is not up yet (no answer at all, or a 502/503/504). */
const ATTEMPTS = 5;

/** A join that cannot succeed as things are (said to the operator; exit 1). */
export class JoinFailed extends Error {}

/** Where the files go (flags over the package's defaults). */
function targets(o: NodeJoinOptions) {
  const stateDir = o.stateDir ?? NODE_PATHS.stateDir;
  return {
    [NODE_PATHS.credentials]: path.join(stateDir, CREDENTIALS_FILE),
    [NODE_PATHS.authority]: path.join(stateDir, AUTHORITY_FILE),
    [NODE_PATHS.serfConfig]: o.serfConfig ?? NODE_PATHS.serfConfig,
    [NODE_PATHS.serfTags]: o.serfTags ?? NODE_PATHS.serfTags,
    [NODE_PATHS.agentConfig]: o.agentConfig ?? NODE_PATHS.agentConfig,
  } as Record<string, string>;
}

/** Reads the join secret; the error never quotes the file's content. */
async function readSecret(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new JoinFailed(`cannot read the secret file ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
  const secret = text.trim();
  if (!JOIN_SECRET.test(secret)) throw new JoinFailed(`${file} does not hold a join secret (43 base64url characters)`);
  return secret;
}

/** One HTTP exchange with a timeout; the body read up to MAX_ANSWER_BYTES. */
async function exchange(url: string, init: RequestInit): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(15_000) });
  const body = await res.text();
  if (body.length > MAX_ANSWER_BYTES) throw new JoinFailed(`${url}: answer larger than ${MAX_ANSWER_BYTES} bytes`);
  return { status: res.status, body };
}

/**
 * Asks the metadata service for the join; the answer as it came. Retries only while nothing was
 * answered or the proxy said the service is away, always with the same body: a join the
 * controllers saw spends the secret, and only the same nkey and box key may repeat it (for a few
 * minutes, when its answer was lost).
 */
async function askToJoin(base: string, body: string, pauseMs: number): Promise<HostJoinAnswer> {
  for (let attempt = 1; ; attempt++) {
    let last: string;
    try {
      const token = await exchange(`${base}/latest/api/token`, {
        method: 'PUT',
        headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '300' },
      });
      if (token.status === 404) throw new JoinFailed('the metadata service does not know this machine (no host record for its MAC)');
      if (token.status === 200) {
        const res = await exchange(`${base}/mammatus/join`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-aws-ec2-metadata-token': token.body.trim() },
          body,
        });
        if (res.status === 404) throw new JoinFailed('the metadata service does not know this machine (no host record for its MAC)');
        if (res.status === 200) return parseAnswer(res.body);
        if (![502, 503, 504].includes(res.status)) throw new JoinFailed(`the metadata service answered ${res.status} to the join`);
        last = `join: HTTP ${res.status}`;
      } else if ([502, 503, 504].includes(token.status)) last = `token: HTTP ${token.status}`;
      else throw new JoinFailed(`the metadata service answered ${token.status} to the token request`);
    } catch (err) {
      if (err instanceof JoinFailed) throw err;
      last = errorMessage(err);
    }
    if (attempt >= ATTEMPTS) throw new JoinFailed(`the metadata service at ${base} did not answer (${last}) after ${ATTEMPTS} tries`);
    await new Promise((r) => setTimeout(r, pauseMs * attempt));
  }
}

function parseAnswer(text: string): HostJoinAnswer {
  try {
    const a = JSON.parse(text) as HostJoinAnswer;
    if (typeof a === 'object' && a !== null && typeof a.ok === 'boolean') return a;
  } catch {
    // reported below
  }
  throw new JoinFailed('the metadata service answered the join with something that is not a join answer');
}

/** Checks an opened grant against what this host sent; its credentials with the host's seed. */
export function credentialsFromGrant(grant: unknown, seed: string, nkey: string): { creds: NodeCredentials; grant: HostJoinGrant } {
  const g = grant as Partial<HostJoinGrant> | null;
  const bad = (what: string): never => {
    throw new JoinFailed(`the join answer is not usable: ${what}`);
  };
  if (typeof g !== 'object' || g === null) return bad('not an object');
  if (
    !Array.isArray(g.retry_join) ||
    g.retry_join.length === 0 ||
    !g.retry_join.every((j) => typeof j === 'string' && /^[\w.:[\]-]{1,100}$/.test(j))
  )
    return bad('retry_join');
  if (g.gossip_key !== undefined && !(typeof g.gossip_key === 'string' && /^[A-Za-z0-9+/]{22,44}={0,2}$/.test(g.gossip_key)))
    return bad('gossip_key');
  let creds: NodeCredentials;
  try {
    creds = parseCredentials(
      {
        version: 1,
        node: g.node,
        roles: g.roles,
        seed,
        authority: g.authority,
        tag: g.tag,
        admitted_at: g.admitted_at,
        // The CA root to pin and the root itself (issue 20); parseCredentials checks one against the other.
        ...(g.ca_fingerprint !== undefined ? { ca_fingerprint: g.ca_fingerprint } : {}),
        ...(g.ca_root !== undefined ? { ca_root: g.ca_root } : {}),
      },
      'the join answer',
    );
  } catch (err) {
    return bad(errorMessage(err));
  }
  // Anyone may seal to this host's key: only a tag for its own key is its admission.
  if (verifyTrustTag(creds.authority, creds.node, creds.tag)?.nkey !== nkey) return bad('the trust tag is for another key');
  return { creds, grant: g as HostJoinGrant };
}

/** The files of a joined host (the paths as node add uses them; see {@link targets}). */
export function planJoinFiles(creds: NodeCredentials, grant: HostJoinGrant, existingSerf?: string, existingTags?: string): PlannedFile[] {
  const config = planConfig({
    node: creds.node,
    roles: creds.roles,
    // Absent when the cluster's gossip is not encrypted: the key is then left out of the JSON.
    gossipKey: grant.gossip_key as string,
    rpcAuth: chooseRpcAuth(existingSerf, randomBytes(24).toString('base64url')),
    join: grant.retry_join,
    existingSerfConfig: existingSerf,
  });
  const tags = planTags(existingTags, creds.roles);
  return [...planCredentials(creds), ...config, ...(tags ? [tags] : [])];
}

/** A file's text; Serf's config names the tags file where this join writes it (`--serf-tags`). */
function contentFor(f: PlannedFile, to: Record<string, string>): string {
  const text = f.content.toString();
  if (f.path !== NODE_PATHS.serfConfig || to[NODE_PATHS.serfTags] === NODE_PATHS.serfTags) return text;
  return `${JSON.stringify({ ...(JSON.parse(text) as object), tags_file: to[NODE_PATHS.serfTags] }, null, 2)}\n`;
}

const readIfThere = (file: string) => readFile(file, 'utf8').catch(() => undefined);

/** What a join wrote. */
export interface JoinResult {
  readonly node: string;
  readonly roles: readonly string[];
  readonly files: readonly string[];
  /** True when the host already held credentials and nothing was asked. */
  readonly already?: boolean;
}

/** Joins this host; `pauseMs` is the first pause between tries (tests shorten it). */
export async function joinHost(o: NodeJoinOptions, pauseMs = 2000): Promise<JoinResult> {
  if (!o.secretFile) throw new UsageError('--secret-file is required');
  const base = new URL(o.metadataUrl ?? DEFAULT_METADATA_URL).href.replace(/\/$/, '');
  const to = targets(o);
  const existing = await readCredentials(to[NODE_PATHS.credentials]).catch((err: unknown) => {
    throw new JoinFailed(errorMessage(err));
  });
  // A re-run (cloud-init's runcmd again, an installed host booting): the secret is spent already.
  if (existing) return { node: existing.node, roles: existing.roles, files: [], already: true };
  const secret = await readSecret(o.secretFile);
  const user = createUser();
  const seed = Buffer.from(user.getSeed()).toString('ascii');
  const nkey = user.getPublicKey();
  const box = newBoxKeyPair();
  const answer = await askToJoin(base, JSON.stringify({ secret, nkey, box: box.publicKey }), pauseMs);
  if (!answer.ok || !answer.sealed) throw new JoinFailed(`the controllers refused the join: ${answer.error ?? 'no reason given'}`);
  let opened: unknown;
  try {
    opened = openSealed(box, answer.sealed);
  } catch (err) {
    throw new JoinFailed(`the join answer does not open: ${errorMessage(err)}`);
  }
  const { creds, grant } = credentialsFromGrant(opened, seed, nkey);
  const files = planJoinFiles(creds, grant, await readIfThere(to[NODE_PATHS.serfConfig]), await readIfThere(to[NODE_PATHS.serfTags]));
  // Credentials last: their presence means the join is complete (a re-run asks nothing).
  const ordered = [...files.filter((f) => f.path !== NODE_PATHS.credentials), ...files.filter((f) => f.path === NODE_PATHS.credentials)];
  for (const f of ordered) await writeFileAtomic(to[f.path] ?? f.path, contentFor(f, to), f.mode);
  return { node: creds.node, roles: creds.roles, files: ordered.map((f) => to[f.path] ?? f.path) };
}

/** `mammatus node join --secret-file F …` */
export async function nodeJoinCommand(o: NodeJoinOptions, io: CliIo): Promise<number> {
  let result: JoinResult;
  try {
    result = await joinHost(o);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    io.err(`error: ${errorMessage(err)}`);
    return 1;
  }
  if (o.json) io.out(JSON.stringify(result));
  else if (result.already) io.out(`${result.node} holds its credentials already: nothing to do`);
  else
    io.out(
      `joined as ${result.node} (${result.roles.join(',') || 'no role'}); wrote ${result.files.join(', ')}\n` +
        'now restart serf and the agent: systemctl restart serf.service mammatus-agent.service',
    );
  return 0;
}
