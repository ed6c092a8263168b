/**
 * What a gateway tells others about the registered instances it serves: its status summary and
 * the `mammatus.reservations` query, which the CLI asks so that `instance register`, `list` and
 * `show` can say why an instance gets no address or name. Pure: both work on the desired state of
 * the role's last apply.
 *
 * Query payload and answer (each answer well under Serf's response limit):
 * - empty: `{"node":"gw-1","served":3,"notes":[["web-1",false,"address … is member c-1's address"]],"truncated":false}`;
 * - an instance name: `{"node":"gw-1","name":"web-1","served":false,"reason":"…"}`;
 * - a JSON candidate `{"name":…,"macs":[…],"ips":[…]}`: the same verdict for it as if it were
 *   registered (what `instance register` asks before it writes).
 */
import type { DesiredState, RoleFacts } from '../types.js';
import type { InstanceSummary } from '../../core/contracts.js';
import { parseGatewayConfig } from './config.js';
import { planInstances, type InstancePlan } from './render-instances.js';

/** Query name, as documented in docs/serf.md. */
export const RESERVATIONS_QUERY = 'mammatus.reservations';
/** Room for the answer under Serf's response limit, the node name and JSON framing included. */
const MAX_ANSWER_BYTES = 800;

/** One instance's verdict at this gateway. */
export interface Verdict {
  readonly node: string;
  readonly name: string;
  readonly served: boolean;
  readonly reason?: string;
}

function plan(desired: DesiredState, instances = desired.instances ?? []): InstancePlan {
  return planInstances(parseGatewayConfig(desired.config), desired.members, instances);
}

/** The gateway's status line about instances, e.g. `3 instances served, 1 left out (web-1: …)`. */
export function servedFacts(desired: DesiredState | undefined): RoleFacts | undefined {
  if (!desired?.instances) return undefined;
  const p = plan(desired);
  const out = p.notes.filter((n) => !n.served);
  const first = out[0];
  const summary = `${p.served.length} instance${p.served.length === 1 ? '' : 's'} served${out.length ? `, ${out.length} left out (${first.name}: ${first.reason})` : ''}`;
  return { summary, served: p.served.length, left_out: out.length };
}

/** Answers `mammatus.reservations` (see the header); undefined before the first apply. */
export function answerReservations(payload: Buffer, desired: DesiredState | undefined): object | undefined {
  if (!desired) return undefined;
  const text = payload.toString('utf8').trim();
  if (text.startsWith('{')) return verdictFor(desired, parseCandidate(text));
  if (text) return verdictOf(desired, plan(desired), text);
  const p = plan(desired);
  const notes = p.notes.map((n) => [n.name, n.served, n.reason] as const);
  for (let n = notes.length; n >= 0; n--) {
    const answer = { node: desired.node, served: p.served.length, notes: notes.slice(0, n), truncated: n < notes.length };
    if (Buffer.byteLength(JSON.stringify(answer)) <= MAX_ANSWER_BYTES) return answer;
  }
  return { node: desired.node, served: p.served.length, notes: [], truncated: true };
}

function verdictOf(desired: DesiredState, p: InstancePlan, name: string): Verdict {
  const note = p.notes.find((n) => n.name === name);
  if (note) return { node: desired.node, name, served: note.served, reason: note.reason.slice(0, 300) };
  if (p.served.some((i) => i.name === name)) return { node: desired.node, name, served: true };
  return { node: desired.node, name, served: false, reason: 'not in the registry as this gateway sees it' };
}

/** The verdict for a candidate, planned as if registered (an existing record of that name aside). */
function verdictFor(desired: DesiredState, candidate: InstanceSummary): Verdict {
  const others = (desired.instances ?? []).filter((i) => i.name !== candidate.name);
  return verdictOf(desired, plan(desired, [...others, candidate]), candidate.name);
}

/** Reads a candidate; throws on anything that is not one (the dispatcher answers with an error). */
function parseCandidate(text: string): InstanceSummary {
  const value = JSON.parse(text) as Record<string, unknown>;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string') && v.length <= 32;
  if (typeof value.name !== 'string' || !strings(value.macs) || !strings(value.ips ?? [])) {
    throw new Error('a candidate is {"name":…,"macs":[…],"ips":[…]}');
  }
  return { name: value.name, macs: (value.macs as string[]).map((m) => m.toLowerCase()), ips: (value.ips as string[] | undefined) ?? [] };
}
