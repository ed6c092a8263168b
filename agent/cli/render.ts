/** `mammatus render ROLE --config PATH [--out DIR]`: shows the files a role would write; applies nothing. */
import os from 'node:os';
import { loadConfig } from '../config/load.js';
import { buildFileOps } from '../../core/files.js';
import { ROLE_NAMES, type RoleName } from '../../core/members.js';
import { roleCatalog } from '../roles.js';
import { createAuthority, mintCredentials } from '../../core/trust.js';
import { UsageError, type CliIo } from './common.js';

/** Runs the command for one of the built-in roles. */
export async function renderCommand(role: string, opts: { config: string; out?: string }, io: CliIo): Promise<number> {
  if (!(ROLE_NAMES as readonly string[]).includes(role))
    throw new UsageError(`unknown role "${role}"; known roles: ${ROLE_NAMES.join(', ')}`);
  // Rendering never starts anything: a spawner that refuses proves it.
  const catalog = roleCatalog({
    spawn: async () => () => {
      throw new Error('render starts no process');
    },
  });
  const plugin = await catalog[role as RoleName]();
  const { config } = await loadConfig({ path: opts.config });
  const node = os.hostname();
  // A preview never shows this node's secrets: what depends on credentials (the controller's users
  // and route secret) is rendered from throwaway ones, admitted for the role being shown.
  const credentials = mintCredentials(createAuthority(), node, [role as RoleName], new Date());
  const files = plugin.render({
    node,
    config: { ...((config.roles as Record<string, Record<string, unknown> | undefined>)[role] ?? {}) },
    members: [],
    credentials,
  });
  if (role === 'controller') io.out('# (users and route secret below come from throwaway credentials; the agent renders its own)');
  if (files.length === 0) io.out(`# role ${role} renders no files`);
  if (opts.out) {
    const writer = buildFileOps({ root: opts.out });
    for (const f of files) await writer.write(f.path, f.content, f.mode);
    io.out(`# wrote ${files.length} file(s) under ${opts.out}`);
    return 0;
  }
  for (const f of files) {
    io.out(`# ${f.path} (mode ${(f.mode ?? 0o644).toString(8)})`);
    io.out(f.content.endsWith('\n') ? f.content.slice(0, -1) : f.content);
  }
  return 0;
}
