/**
 * `mammatus status [--json] [--tag role=NAME] [--timeout D]`: asks every agent for `mammatus.status`
 * and shows every member in one table, marking those that did not answer. It returns as soon as
 * every alive member running an agent (`mammatus` tag) has answered, not after the query timeout.
 */
import { STATUS_QUERY, type StatusAnswer } from '../../handlers/status.js';
import { parseRoleTag } from '../../core/members.js';
import { AGENT_TAG, ROLE_TAG } from '../../core/members.js';
import type { Member } from '../../core/contracts.js';
import { connect, formatTable, queryUntilAnswered, tagsMatch, parseTimeoutFlag, type CliIo, type GlobalOptions } from './common.js';
import { withTrust } from './credentials.js';
import { TRUST_TAG } from '../../core/trust.js';

/** Flags of the status command. */
export interface StatusOptions {
  json?: boolean;
  tag?: Record<string, string>;
  timeout?: string;
  /** Also list planned bare-metal hosts with their progress (reads the registry). */
  hosts?: boolean;
  nats?: string;
}

/** One row of the result. */
export interface MemberStatusRow {
  node: string;
  addr: string;
  status: Member['status'];
  /** Roles from the agent's answer, else as the `role` tag names them. */
  roles: string[];
  /** The agent's answer, or null when it did not answer in time. */
  answer: StatusAnswer | null;
  /** Why there is no answer: `no agent` (no `mammatus` tag), `not alive`, `no answer`, `bad answer`, `error: …`. */
  missing?: string;
  /**
   * What its trust tag proves, checked here with the cluster authority's key: `admitted` (every
   * role its tag names), `untrusted` (a role it asks for, or no admission at all, without proof),
   * `unknown` (this host knows no authority to check with).
   */
  trust: 'admitted' | 'untrusted' | 'unknown';
}

/** The trust verdict of one member (see `MemberStatusRow.trust`). */
export function trustVerdict(m: Member): MemberStatusRow['trust'] {
  if (m.trusted === undefined) return 'unknown';
  const asked = parseRoleTag(m.tags[ROLE_TAG]).roles;
  if (!asked.every((r) => m.trusted!.includes(r))) return 'untrusted';
  // No role asked for: admitted when it carries a trust tag at all (a forged one buys nothing).
  return asked.length > 0 || m.tags[TRUST_TAG] !== undefined ? 'admitted' : 'untrusted';
}

/** Asks the cluster and collects one row per member. */
export async function collectStatus(g: GlobalOptions, opts: StatusOptions): Promise<MemberStatusRow[]> {
  const timeoutMs = parseTimeoutFlag(opts.timeout);
  const client = await connect(g);
  try {
    const members = (await withTrust(g, await client.members())).filter((m) => tagsMatch(m.tags, opts.tag ?? {}));
    const waiting = new Set(members.filter((m) => m.status === 'alive' && m.tags[AGENT_TAG]).map((m) => m.name));
    const texts = await queryUntilAnswered(client, { name: STATUS_QUERY, filterTags: opts.tag, timeoutMs }, waiting);
    const answers = new Map([...texts].map(([node, text]) => [node, parseStatusAnswer(text)]));
    return members
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((m) => {
        const a = answers.get(m.name);
        const answer = typeof a === 'object' ? a : null;
        const tagged = parseRoleTag(m.tags[ROLE_TAG]);
        const row: MemberStatusRow = {
          node: m.name,
          addr: `${m.addr}:${m.port}`,
          status: m.status,
          roles: answer ? answer.roles : [...tagged.roles, ...tagged.unknown],
          answer,
          trust: trustVerdict(m),
        };
        if (typeof a === 'string') row.missing = a;
        else if (!a) row.missing = m.status !== 'alive' ? 'not alive' : m.tags[AGENT_TAG] ? 'no answer' : 'no agent';
        return row;
      });
  } finally {
    client.close();
  }
}

/**
 * Parses one agent's answer: a status object, or the reason there is none (an agent's
 * `{"error": …}` answer, or anything that is not a status object).
 */
export function parseStatusAnswer(text: string): StatusAnswer | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'bad answer';
  }
  const v = value as Partial<StatusAnswer> & { error?: unknown };
  if (typeof v !== 'object' || v === null) return 'bad answer';
  if (typeof v.error === 'string') return `error: ${v.error}`;
  const ok =
    typeof v.node === 'string' &&
    Array.isArray(v.roles) &&
    typeof v.version === 'string' &&
    typeof v.role_status === 'object' &&
    v.role_status !== null;
  return ok ? (v as StatusAnswer) : 'bad answer';
}

/** Human-readable cell for a node's role states: `ok`, or `gateway:error compute:ok`. */
function stateCell(a: StatusAnswer): string {
  const entries = Object.entries(a.role_status ?? {});
  if (entries.every(([, s]) => s.state === 'ok')) return 'ok';
  return entries.map(([r, s]) => `${r}:${s.state}`).join(' ');
}

/** Runs the command; exit code 1 when a member with an agent did not answer or a role failed. */
export async function statusCommand(g: GlobalOptions, opts: StatusOptions, io: CliIo): Promise<number> {
  const rows = await collectStatus(g, opts);
  // A host is `ok` only as an alive member whose trust tag verifies (as `host list` says it).
  const alive = new Map(rows.map((r) => [r.node, r.status === 'alive' && r.trust === 'untrusted' ? 'alive, untrusted' : r.status]));
  const hosts = opts.hosts ? await import('./status-hosts.js') : undefined;
  const bad = rows.some(
    (r) => (r.missing && r.missing !== 'no agent' && r.missing !== 'not alive') || (r.answer && stateCell(r.answer) !== 'ok'),
  );
  if (opts.json) {
    // With --hosts the answer is an object (members and hosts); without, the array it always was.
    const out = hosts ? { members: rows, hosts: await hosts.plannedHosts(g, opts.nats, alive) } : rows;
    io.out(JSON.stringify(out, null, 2));
    return bad ? 1 : 0;
  }
  const table = [['NODE', 'ADDRESS', 'SERF', 'ROLES', 'TRUST', 'VERSION', 'UPTIME', 'STATE']];
  const errors: string[] = [];
  const details: string[] = [];
  for (const r of rows) {
    const a = r.answer;
    table.push([
      r.node,
      r.addr,
      r.status,
      r.roles.join(',') || '-',
      r.trust === 'unknown' ? '?' : r.trust,
      a?.version ?? '-',
      a ? `${a.uptime_s}s` : '-',
      a ? stateCell(a) : `(${r.missing})`,
    ]);
    for (const [role, s] of Object.entries(a?.role_status ?? {})) {
      if (s.error) errors.push(`${r.node} ${role}: ${s.error}`);
      if (s.detail) details.push(`${r.node} ${role}: ${s.detail}`);
    }
    for (const e of a?.trust?.errors ?? []) errors.push(`${r.node} trust: ${e}`);
    // A failing renewal shows long before the certificate expires (issue 20).
    if (a?.tls?.last_error)
      errors.push(
        `${r.node} tls: ${a.tls.last_error} (${a.tls.not_after ? `certificate valid until ${a.tls.not_after}` : 'no certificate yet'})`,
      );
    if (r.trust === 'untrusted')
      errors.push(`${r.node} trust: no proof of admission for ${r.roles.join(',') || 'membership'}: treated as a stranger`);
  }
  for (const line of formatTable(table)) io.out(line);
  for (const d of details) io.out(`  ${d}`);
  for (const e of errors) io.out(`  ! ${e}`);
  if (hosts) for (const line of await hosts.plannedHostLines(g, opts.nats, alive)) io.out(line);
  return bad ? 1 : 0;
}
