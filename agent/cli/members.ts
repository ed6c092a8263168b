/** `mammatus members [--json]`: every member Serf knows, with roles and agent version. */
import { parseRoleTag } from '../../core/members.js';
import { AGENT_TAG, ROLE_TAG } from '../../core/members.js';
import { connect, formatTable, type CliIo, type GlobalOptions } from './common.js';

/** Runs the command. */
export async function membersCommand(g: GlobalOptions, opts: { json?: boolean }, io: CliIo): Promise<number> {
  const client = await connect(g);
  try {
    const members = (await client.members()).sort((a, b) => a.name.localeCompare(b.name));
    if (opts.json) {
      io.out(JSON.stringify(members, null, 2));
      return 0;
    }
    const rows = [['NODE', 'ADDRESS', 'STATUS', 'ROLES', 'AGENT']];
    for (const m of members) {
      const roles = m.tags[ROLE_TAG] ? parseRoleTag(m.tags[ROLE_TAG]) : undefined;
      const roleText = roles ? [...roles.roles, ...roles.unknown.map((u) => `${u}?`)].join(',') : '-';
      rows.push([m.name, `${m.addr}:${m.port}`, m.status, roleText || '-', m.tags[AGENT_TAG] ?? '-']);
    }
    for (const line of formatTable(rows)) io.out(line);
    return 0;
  } finally {
    client.close();
  }
}
