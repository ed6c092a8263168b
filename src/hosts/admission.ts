/**
 * The controllers' side of a planned host's join (issue 19): a host that PXE-booted from the
 * gateway sends its one-time join secret, a NATS user key it made itself and an X25519 key, through
 * the gateway's metadata proxy (which vouches for its MAC) and the metadata service (which resolves
 * it to its host record), as a `mammatus.hosts.join` request. Admission checks the record (a
 * planned host, this MAC, its name free or its own, its key not another node's), takes the secret
 * (once, bound to the MAC, before its expiry; joins.ts; a repeat of the same join within a few
 * minutes is answered again, sealed to the same key, since its first answer may have been lost), signs the host's key for its name and roles, enters it in the roster, records
 * `joined`, and answers with the credentials (without a seed: the host has its own) plus Serf's
 * gossip key and the controllers' addresses, sealed to the host's X25519 key (sealed.ts).
 *
 * Also the progress reports of `mammatus.hosts.progress` (`booted`, `seeded`, `installed`).
 * Nothing secret is logged or put in an error: a refusal names the rule, never the secret.
 */
import {
  JOIN_SECRET,
  type HostJoinAnswer,
  type HostJoinGrant,
  type HostJoinRequest,
  type HostProgressRequest,
} from '../../core/host-record.js';
import { normalizeMac, type InstanceRecord } from '../../core/instance-record.js';
import type { Logger } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import { checkNodeName, isUserKey, mintForKey, type AdmittedNode } from '../../core/trust.js';
import type { CaPin } from '../ca/store.js';
import { isHost } from './hosts.js';
import { JoinRefused, type JoinAttempt, type JoinUse } from './joins.js';
import { isBoxPublicKey, seal } from './sealed.js';

/** A join or progress request larger than this is refused unread (a join is about 300 bytes). */
export const MAX_HOST_REQUEST_BYTES = 2048;

/** What admission works with (the real buckets in hosted.ts; tests may pass others). */
export interface AdmissionDeps {
  /** The host record by instance id (undefined: none). */
  readonly find: (hostId: string) => Promise<InstanceRecord | undefined>;
  /** Takes the host's secret, or lets a repeat of its join through; throws JoinRefused (joins.ts JoinSecrets.consume). */
  readonly consume: (hostId: string, attempt: JoinAttempt, now: Date, repeatOnly: boolean) => Promise<JoinUse>;
  /** Records a step of the host's progress (hosts.ts Hosts.progress). */
  readonly progress: (hostId: string, step: 'booted' | 'seeded' | 'joined' | 'installed') => Promise<unknown>;
  readonly roster: {
    get(node: string): Promise<AdmittedNode | undefined>;
    put(node: AdmittedNode): Promise<void>;
    list(): Promise<readonly AdmittedNode[]>;
  };
  /** The authority's seed (this controller's credentials), or undefined when it holds none. */
  readonly authoritySeed: () => string | undefined;
  /** Serf's gossip key; undefined when gossip is not encrypted; throws when it cannot be read now. */
  readonly gossipKey: () => Promise<string | undefined>;
  /** Serf addresses (`ip:port`) of the alive controllers. */
  readonly retryJoin: () => readonly string[];
  /** The CA root and its fingerprint to pin (issue 20), undefined without a CA; absent: none pinned. */
  readonly caPin?: () => Promise<CaPin | undefined>;
  readonly now: () => Date;
  readonly log: Logger;
}

/** A request that breaks the rules: answered `{ok: false}`, nothing changed. */
class Refused extends Error {}

/** Parses a request body as a JSON object of string fields (`fields`), nothing else; throws Refused. */
function parseFields(data: Uint8Array, fields: readonly string[]): Record<string, string> {
  if (data.length > MAX_HOST_REQUEST_BYTES) throw new Refused(`request larger than ${MAX_HOST_REQUEST_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    throw new Refused('request is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Refused('request is not a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!fields.includes(k)) throw new Refused(`request: unknown field ${k}`);
  for (const k of fields) if (typeof o[k] !== 'string' || o[k] === '') throw new Refused(`request: ${k} must be a string`);
  return o as Record<string, string>;
}

/** Checks a join request's shape (not its secret: that is compared with the stored one only). */
export function parseJoinRequest(data: Uint8Array): HostJoinRequest {
  const r = parseFields(data, ['host_id', 'mac', 'secret', 'nkey', 'box']);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(r.host_id)) throw new Refused('request: host_id is not an instance id');
  if (!JOIN_SECRET.test(r.secret)) throw new Refused('wrong join secret');
  if (!isUserKey(r.nkey)) throw new Refused('nkey: not a NATS user public key (U…)');
  if (!isBoxPublicKey(r.box)) throw new Refused('box: not an X25519 public key (base64 of 32 bytes)');
  try {
    return { host_id: r.host_id, mac: normalizeMac(r.mac), secret: r.secret, nkey: r.nkey, box: r.box };
  } catch {
    throw new Refused('request: mac is not a MAC address');
  }
}

/** Checks a progress report's shape. */
export function parseProgressRequest(data: Uint8Array): HostProgressRequest {
  const r = parseFields(data, ['host_id', 'step']);
  if (!['booted', 'seeded', 'installed'].includes(r.step)) throw new Refused('step: one of booted, seeded, installed');
  return { host_id: r.host_id, step: r.step as HostProgressRequest['step'] };
}

/** The host record of `hostId` if it is a planned host; else Refused (same words for "none" and "not a host"). */
async function plannedHost(deps: AdmissionDeps, hostId: string) {
  const r = await deps.find(hostId);
  if (!r || r.id !== hostId || !isHost(r)) throw new Refused(`no planned host ${hostId}`);
  return r;
}

/** Answers one join request (already parsed). Never throws: a failure is `{ok: false, error}`. */
export async function admitHost(deps: AdmissionDeps, req: HostJoinRequest): Promise<HostJoinAnswer> {
  const log = deps.log.child({ host_id: req.host_id, mac: req.mac });
  let taken: string | undefined;
  try {
    const record = await plannedHost(deps, req.host_id);
    const node = record.name;
    if (!record.macs.includes(req.mac)) throw new Refused(`host ${node} does not have MAC ${req.mac}`);
    const joined = record.host.progress.joined;
    if (record.host.roles.includes('controller'))
      throw new Refused(`host ${node} is planned as a controller: a controller is added with mammatus node add, not by joining`);
    checkNodeName(node);
    const authoritySeed = deps.authoritySeed();
    if (!authoritySeed) throw new Error('this controller holds no authority seed');
    // The name and the key must be this host's own: an entry of another node (or of a host of the
    // same name registered before) is never replaced by a join, and a key admitted under another
    // name is never signed for this one (the roster must map one key to one node).
    const known = await deps.roster.get(node);
    if (known && known.host_id !== record.id)
      throw new Refused(`a node named ${node} is already admitted: choose another name or mammatus node remove ${node}`);
    const holder = (await deps.roster.list()).find((n) => n.nkey === req.nkey && n.node !== node);
    if (holder) throw new Refused(`this nkey is already admitted as node ${holder.node}: a joining host makes a key of its own`);
    // Read before the secret is taken: a failure here leaves the secret for the next try.
    const gossipKey = await deps.gossipKey();
    const retryJoin = [...deps.retryJoin()];
    const caPin = await deps.caPin?.();
    if (retryJoin.length === 0) throw new Error('no alive controller to join (Serf lists none)');
    const now = deps.now();
    let use: JoinUse;
    try {
      use = await deps.consume(record.id, { secret: req.secret, mac: req.mac, nkey: req.nkey, box: req.box }, now, Boolean(joined));
    } catch (err) {
      if (joined && err instanceof JoinRefused)
        throw new Refused(`host ${node} joined already at ${joined} (mammatus host rejoin ${node} for a new secret)`);
      throw err;
    }
    taken = node;
    const minted = mintForKey(authoritySeed, node, record.host.roles, now, req.nkey);
    await deps.roster.put({ node, roles: minted.roles, nkey: minted.nkey, admitted_at: minted.admitted_at, host_id: record.id });
    await deps.progress(record.id, 'joined');
    const grant: HostJoinGrant = {
      node,
      roles: minted.roles,
      authority: minted.authority,
      tag: minted.tag,
      admitted_at: minted.admitted_at,
      ...(gossipKey ? { gossip_key: gossipKey } : {}),
      retry_join: retryJoin,
      ...(caPin ? { ca_fingerprint: caPin.ca_fingerprint, ca_root: caPin.ca_root } : {}),
    };
    log.info(
      {
        node,
        roles: minted.roles,
        nkey: minted.nkey,
        repeat: use === 'repeat',
        replaced: known && known.nkey !== minted.nkey ? known.nkey : undefined,
      },
      use === 'repeat' ? 'host join answered again (its first answer was lost)' : 'host joined',
    );
    return { ok: true, sealed: seal(req.box, grant) };
  } catch (err) {
    const refused = err instanceof Refused || err instanceof JoinRefused;
    const spent = taken ? ` (its secret is spent: mammatus host rejoin ${taken})` : '';
    const error = refused ? errorMessage(err) : `the controllers could not admit the host: ${errorMessage(err)}${spent}`;
    if (refused) log.warn({ error }, 'host join refused');
    else log.error({ error }, 'host join failed');
    return { ok: false, error };
  }
}

/** Records one progress report. Never throws. */
export async function recordHostProgress(deps: AdmissionDeps, req: HostProgressRequest): Promise<{ ok: boolean; error?: string }> {
  try {
    const record = await plannedHost(deps, req.host_id);
    if (req.step === 'installed') {
      if (!record.host.install_disk) throw new Refused(`host ${record.name} has no install disk`);
      if (!record.host.progress.joined) throw new Refused(`host ${record.name} has not joined yet`);
    }
    await deps.progress(record.id, req.step);
    return { ok: true };
  } catch (err) {
    const error = errorMessage(err);
    deps.log.warn({ host_id: req.host_id, step: req.step, error }, 'host progress refused');
    return { ok: false, error };
  }
}

/** Parses and answers one raw join request. */
export function answerJoin(deps: AdmissionDeps, data: Uint8Array): Promise<HostJoinAnswer> {
  let req: HostJoinRequest;
  try {
    req = parseJoinRequest(data);
  } catch (err) {
    deps.log.warn({ error: errorMessage(err) }, 'host join refused');
    return Promise.resolve({ ok: false, error: errorMessage(err) });
  }
  return admitHost(deps, req);
}

/** Parses and answers one raw progress report. */
export function answerProgress(deps: AdmissionDeps, data: Uint8Array): Promise<{ ok: boolean; error?: string }> {
  let req: HostProgressRequest;
  try {
    req = parseProgressRequest(data);
  } catch (err) {
    return Promise.resolve({ ok: false, error: errorMessage(err) });
  }
  return recordHostProgress(deps, req);
}
