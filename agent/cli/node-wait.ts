/**
 * The last step of `node add`: wait until the new node is an alive Serf member running an agent
 * and answers `mammatus.status` (asked of that node alone) with every role it was added with `ok`.
 * Polls five times a second up to the deadline; the error says what was last seen.
 */
import { AGENT_TAG } from '../../core/members.js';
import type { RoleName } from '../../core/members.js';
import { STATUS_QUERY } from '../../handlers/status.js';
import { connect, queryUntilAnswered, type GlobalOptions } from './common.js';
import { withTrust } from './credentials.js';
import { parseStatusAnswer, trustVerdict } from './status.js';

/** The node's status line and how long it took to become an alive member. */
export interface NodeReady {
  readonly line: string;
  /** From the start of the wait to the node being an alive member (NaN if it already was). */
  readonly joinedMs: number;
}

/** Waits for `node` to answer with every one of `roles` ok; throws after `timeoutMs`. */
export async function waitForNode(g: GlobalOptions, node: string, roles: readonly RoleName[], timeoutMs: number): Promise<NodeReady> {
  const started = performance.now();
  const deadline = started + timeoutMs;
  const client = await connect(g);
  let joinedMs = NaN;
  let first = true;
  let last = 'not a member yet';
  try {
    for (;;) {
      // Trust is checked once, for the line printed at the end: each check is an ed25519 verify.
      const member = (await client.members()).find((m) => m.name === node);
      if (member?.status === 'alive' && Number.isNaN(joinedMs)) joinedMs = first ? 0 : performance.now() - started;
      first = false;
      if (member?.status === 'alive' && member.tags[AGENT_TAG] !== undefined) {
        const left = Math.max(1000, Math.min(5000, deadline - performance.now()));
        const answers = await queryUntilAnswered(client, { name: STATUS_QUERY, filterNodes: [node], timeoutMs: left }, new Set([node]));
        const a = parseStatusAnswer(answers.get(node) ?? 'no answer');
        if (typeof a === 'string') last = a;
        else {
          const bad = roles.filter((r) => a.role_status[r]?.state !== 'ok');
          if (bad.length === 0) {
            const cells = [
              node,
              `${member.addr}:${member.port}`,
              member.status,
              a.roles.join(',') || '-',
              trustVerdict((await withTrust(g, [member]))[0]),
              a.version,
              'ok',
            ];
            return { line: cells.join('  '), joinedMs };
          }
          last = bad
            .map((r) => `${r} ${a.role_status[r]?.state ?? 'not running'}${a.role_status[r]?.error ? `: ${a.role_status[r].error}` : ''}`)
            .join(', ');
        }
      } else if (member) last = member.status === 'alive' ? 'a member, its agent not ready yet' : `a member, ${member.status}`;
      if (performance.now() > deadline) throw new Error(`${node} was not ok after ${Math.round(timeoutMs / 1000)} s: ${last}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.close();
  }
}
