/**
 * Where `mammatus instance launch` puts an instance. Without `--node` it asks every compute node
 * (`mammatus.capacity`, a Serf query filtered to the `compute` role) and picks one; with `--node` it
 * checks that the node is an alive compute member that can take instances. Choosing is pure
 * ({@link chooseNode}); asking is one Serf query that ends as soon as every alive compute member
 * has answered.
 */
import { CAPACITY_QUERY, type CapacityAnswer } from '../../roles/compute/capacity.js';
import { parseRoleTag } from '../../core/members.js';
import { AGENT_TAG, ROLE_TAG } from '../../core/members.js';
import type { Member } from '../../core/contracts.js';
import { connect, queryUntilAnswered, type GlobalOptions } from './common.js';

/** Serf's tag filters are unanchored regular expressions; the `role` tag is a comma-separated list. */
export const COMPUTE_TAG_FILTER = { [ROLE_TAG]: '(^|,)compute(,|$)' };

/** What the cluster said: the compute members, and the answers (or why there is none) per node. */
export interface CapacitySurvey {
  readonly members: readonly Member[];
  readonly answers: ReadonlyMap<string, CapacityAnswer | string>;
}

/** Parses one answer; a string says why it is not a capacity answer. */
export function parseCapacityAnswer(text: string): CapacityAnswer | string {
  try {
    const v = JSON.parse(text) as Partial<CapacityAnswer> & { error?: unknown };
    if (typeof v.error === 'string') return `error: ${v.error}`;
    const ok =
      typeof v.node === 'string' &&
      typeof v.ready === 'boolean' &&
      [v.cpus, v.mem_available_mb, v.instances].every((n) => typeof n === 'number');
    return ok ? (v as CapacityAnswer) : 'bad answer';
  } catch {
    return 'bad answer';
  }
}

/** Asks the compute members (all, or only `node`) for their capacity. */
export async function surveyCapacity(g: GlobalOptions, opts: { node?: string; timeoutMs?: number } = {}): Promise<CapacitySurvey> {
  const client = await connect(g);
  try {
    const isCompute = (m: Member) => m.tags[ROLE_TAG] !== undefined && parseRoleTag(m.tags[ROLE_TAG]).roles.includes('compute');
    const all = await client.members();
    const members = all.filter((m) => (opts.node ? m.name === opts.node : isCompute(m)));
    const waiting = new Set(members.filter((m) => m.status === 'alive' && isCompute(m) && m.tags[AGENT_TAG]).map((m) => m.name));
    const params = {
      name: CAPACITY_QUERY,
      filterTags: COMPUTE_TAG_FILTER,
      ...(opts.node ? { filterNodes: [opts.node] } : {}),
      timeoutMs: opts.timeoutMs ?? 0,
    };
    const texts = await queryUntilAnswered(client, params, waiting);
    const answers = new Map([...texts].map(([node, text]) => [node, parseCapacityAnswer(text)]));
    return { members, answers };
  } finally {
    client.close();
  }
}

/** Why a member cannot take an instance now, or undefined when it can. */
export function unfitReason(member: Member | undefined, answer: CapacityAnswer | string | undefined): string | undefined {
  if (!member) return 'not a member of the cluster';
  if (member.status !== 'alive') return `not alive (serf: ${member.status})`;
  if (!member.tags[ROLE_TAG] || !parseRoleTag(member.tags[ROLE_TAG]).roles.includes('compute')) return 'does not have the compute role';
  if (!member.tags[AGENT_TAG]) return 'runs no mammatus agent';
  if (answer === undefined) return 'did not answer';
  if (typeof answer === 'string') return answer;
  if (!answer.ready) return `not ready: ${answer.reason ?? 'unknown'}`;
  return undefined;
}

/**
 * Picks the node for a new instance: among the ready ones, the fewest instances per CPU, counting
 * both what LXD has and what the registry has placed there but not created yet (so ten launches
 * in a row spread out); then the most available memory; then the name, so the choice is stable.
 */
export function chooseNode(survey: CapacitySurvey, placed: ReadonlyMap<string, number>): { node: string } | { error: string } {
  const fit: CapacityAnswer[] = [];
  const unfit: string[] = [];
  for (const m of [...survey.members].sort((a, b) => a.name.localeCompare(b.name))) {
    const answer = survey.answers.get(m.name);
    const why = unfitReason(m, answer);
    if (why) unfit.push(`${m.name}: ${why}`);
    else fit.push(answer as CapacityAnswer);
  }
  if (!fit.length)
    return {
      error: `no compute node can take the instance${unfit.length ? ` (${unfit.join('; ')})` : ': the cluster has no compute node'}`,
    };
  const load = (a: CapacityAnswer) => (Math.max(a.instances, placed.get(a.node) ?? 0) + 1) / Math.max(1, a.cpus);
  fit.sort((a, b) => load(a) - load(b) || b.mem_available_mb - a.mem_available_mb || a.node.localeCompare(b.node));
  return { node: fit[0].node };
}
