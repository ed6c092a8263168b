/**
 * What the gateways make of registered instances, for `instance register|launch|list|show`: a
 * gateway leaves an instance out when its name, MAC or address is already a member's, the
 * gateway's or a configured reservation's, and says why through `mammatus.reservations` (a Serf
 * query to the gateways). Asking is best effort: without a local serf agent, or with no gateway
 * answering in time, the commands say nothing more than before.
 */
import { parseRoleTag } from '../../core/members.js';
import { AGENT_TAG, ROLE_TAG } from '../../core/members.js';
import type { Member } from '../../core/contracts.js';
import { connect, queryUntilAnswered, type GlobalOptions } from './common.js';

/** The gateways' query, as the gateway role declares it (docs/serf.md). */
const RESERVATIONS_QUERY = 'mammatus.reservations';
/** Serf's tag filters are unanchored regular expressions; the `role` tag is a comma-separated list. */
const GATEWAY_TAG_FILTER = { [ROLE_TAG]: '(^|,)gateway(,|$)' };
/** Gateways answer from memory: a short wait keeps a command fast when one is down. */
const ASK_TIMEOUT_MS = 2000;

/** One gateway's word on one instance. */
export interface GatewayNote {
  readonly gateway: string;
  readonly served: boolean;
  readonly reason?: string;
}

/** An instance as `instance register` is about to record it. */
export interface Candidate {
  readonly name: string;
  readonly macs: readonly string[];
  readonly ips: readonly string[];
}

/** Sends the query to every alive gateway; the answers by gateway, or undefined when serf cannot be asked. */
async function askGateways(g: GlobalOptions, payload: string): Promise<Map<string, unknown> | undefined> {
  try {
    const client = await connect(g);
    try {
      const isGateway = (m: Member) => m.tags[ROLE_TAG] !== undefined && parseRoleTag(m.tags[ROLE_TAG]).roles.includes('gateway');
      const waiting = new Set(
        (await client.members()).filter((m) => m.status === 'alive' && isGateway(m) && m.tags[AGENT_TAG]).map((m) => m.name),
      );
      const params = { name: RESERVATIONS_QUERY, payload: Buffer.from(payload), filterTags: GATEWAY_TAG_FILTER, timeoutMs: ASK_TIMEOUT_MS };
      const texts = await queryUntilAnswered(client, params, waiting);
      const answers = new Map<string, unknown>();
      for (const [node, text] of texts) {
        try {
          answers.set(node, JSON.parse(text));
        } catch {
          // An agent of another version, or a garbled answer: it tells us nothing.
        }
      }
      return answers;
    } finally {
      client.close();
    }
  } catch {
    return undefined;
  }
}

/** A verdict answer as a note, or undefined when it is not one. */
function toNote(gateway: string, answer: unknown): GatewayNote | undefined {
  const a = answer as { served?: unknown; reason?: unknown };
  if (typeof a?.served !== 'boolean') return undefined;
  return { gateway, served: a.served, ...(typeof a.reason === 'string' ? { reason: a.reason } : {}) };
}

/** What every gateway would make of `candidate` if it were registered (asked before, or right after, writing it). */
export async function notesForCandidate(g: GlobalOptions, candidate: Candidate): Promise<GatewayNote[]> {
  const answers = await askGateways(g, JSON.stringify(candidate));
  return [...(answers ?? [])].flatMap(([gw, a]) => toNote(gw, a) ?? []);
}

/** What every gateway makes of the registered instance `name`. */
export async function notesForInstance(g: GlobalOptions, name: string): Promise<GatewayNote[]> {
  const answers = await askGateways(g, name);
  return [...(answers ?? [])].flatMap(([gw, a]) => toNote(gw, a) ?? []);
}

/** Every gateway's notes, by instance name (instances served as registered have none). */
export async function notesByInstance(g: GlobalOptions): Promise<Map<string, GatewayNote[]>> {
  const out = new Map<string, GatewayNote[]>();
  for (const [gateway, answer] of (await askGateways(g, '')) ?? []) {
    const notes = (answer as { notes?: unknown }).notes;
    if (!Array.isArray(notes)) continue;
    for (const n of notes as unknown[]) {
      if (!Array.isArray(n) || typeof n[0] !== 'string' || typeof n[1] !== 'boolean' || typeof n[2] !== 'string') continue;
      out.set(n[0], [...(out.get(n[0]) ?? []), { gateway, served: n[1], reason: n[2] }]);
    }
  }
  return out;
}

/** One line about one note, e.g. `gateway-1 leaves web-1 out: address … is member c-1's address`. */
export function describeNote(name: string, n: GatewayNote): string {
  if (!n.reason) return `${n.gateway} serves ${name}`;
  return n.served ? `${n.gateway} serves ${name}, but ${n.reason}` : `${n.gateway} leaves ${name} out: ${n.reason}`;
}
