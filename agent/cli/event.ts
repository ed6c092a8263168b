/**
 * `mammatus event NAME [PAYLOAD] [--coalesce] [--identity FILE]`: fires a user event, like `serf
 * event`. Events that change desired state (every `mammatus.*` event but the open ones, see
 * core/signed-event.ts) are signed with the operator's key, and then the agents are asked what
 * they made of it (`mammatus.verdict`): the command fails when none accepted it.
 */
import { AGENT_TAG } from '../../core/members.js';
import { envelopeId, eventNeedsSignature } from '../../core/signed-event.js';
import type { SerfClient } from '../serf/client.js';
import { connect, queryUntilAnswered, type CliIo, type GlobalOptions } from './common.js';
import { sealAsOperator } from './operator-key.js';

/** Flags of the event command. */
export interface EventOptions {
  coalesce?: boolean;
  identity?: string;
  /** The operator's ssh-agent socket and home (from the environment). */
  agentSocket?: string;
  home?: string;
}

/** How long the agents get to receive a signed event and say what they made of it. */
const VERDICT_WAIT_MS = 4000;
/** Pause before asking again the agents that have not seen the event yet. */
const UNSEEN_RETRY_MS = 250;

/** One agent's answer about a signed event. */
interface VerdictAnswer {
  verdict?: 'accepted' | 'refused' | 'unseen';
  operator?: string;
  reason?: string;
}

/** Runs the command. Coalescing is off by default: it would drop earlier events of the same name. */
export async function eventCommand(
  g: GlobalOptions,
  name: string,
  payload: string | undefined,
  opts: EventOptions,
  io: CliIo,
): Promise<number> {
  const body = Buffer.from(payload ?? '');
  let envelope: Buffer = body;
  if (eventNeedsSignature(name)) {
    const sealed = await sealAsOperator(name, body, { ...opts, why: 'must be signed by an operator' }, io);
    if (typeof sealed === 'number') return sealed;
    envelope = sealed;
  }
  const client = await connect(g);
  try {
    await client.event(name, envelope, Boolean(opts.coalesce));
    io.out(`Event '${name}' dispatched! Coalescing enabled: ${Boolean(opts.coalesce)}`);
    const id = envelope === body ? undefined : envelopeId(envelope);
    return id ? await reportVerdicts(client, name, id, io) : 0;
  } finally {
    client.close();
  }
}

/** Asks every agent what it made of the signed event; 1 when none accepted it. */
async function reportVerdicts(client: SerfClient, name: string, id: string, io: CliIo): Promise<number> {
  const members = await client.members();
  let waiting = new Set(members.filter((m) => m.status === 'alive' && m.tags[AGENT_TAG]).map((m) => m.name));
  const verdicts = new Map<string, VerdictAnswer>();
  const deadline = Date.now() + VERDICT_WAIT_MS;
  // Gossip brings the event and the question separately: an agent may be asked before it saw it.
  while (waiting.size > 0 && Date.now() < deadline) {
    const params = { name: 'mammatus.verdict', payload: Buffer.from(`${name} ${id}`), timeoutMs: Math.max(500, deadline - Date.now()) };
    const texts = await queryUntilAnswered(client, params, waiting);
    for (const [node, text] of texts) verdicts.set(node, parseVerdict(text));
    waiting = new Set([...waiting].filter((n) => (verdicts.get(n)?.verdict ?? 'unseen') === 'unseen'));
    if (waiting.size > 0) await new Promise((r) => setTimeout(r, UNSEEN_RETRY_MS));
  }
  let accepted = 0;
  let refused = 0;
  for (const [node, v] of [...verdicts].sort(([a], [b]) => a.localeCompare(b))) {
    if (v.verdict === 'accepted') accepted++;
    if (v.verdict === 'refused') refused++;
    if (v.verdict === 'refused') io.err(`Refused by '${node}': ${v.reason ?? 'no reason given'}`);
  }
  const operator = [...verdicts.values()].find((v) => v.operator)?.operator;
  io.out(
    `Accepted by ${accepted} agent(s)${operator ? ` as operator ${operator}` : ''}; refused by ${refused}; not seen by ${waiting.size}`,
  );
  if (accepted > 0) return 0;
  io.err(`error: no agent accepted ${name}`);
  return 1;
}

function parseVerdict(text: string): VerdictAnswer {
  try {
    const v = JSON.parse(text) as VerdictAnswer & { error?: string };
    return v.error ? { verdict: 'refused', reason: v.error } : v;
  } catch {
    return { verdict: 'refused', reason: `bad answer: ${text.slice(0, 80)}` };
  }
}
