/**
 * One iptables chain of ours in a table that other software (or another of our roles) also uses:
 * restored with `--noflush`, so only our chain is replaced (atomically) and everything else in the
 * table stays; jumped to once from a built-in chain; validated first by a restore into a throw-away
 * network namespace (`unshare -n`), because `iptables-restore --test` misses errors the kernel rejects.
 */
import type { Run } from './contracts.js';

/** Where a chain of ours lives and what jumps to it. */
export interface OwnChain {
  readonly table: 'filter' | 'nat' | 'mangle' | 'raw';
  /** The built-in chain that jumps to ours (`INPUT`, `OUTPUT`, …). */
  readonly hook: string;
  readonly chain: string;
}

/** Restores `file` (for `--noflush`) into a scratch network namespace; throws with iptables' message. */
export async function validateOwnChain(run: Run, file: string): Promise<void> {
  await run('unshare', ['--net', '--', 'iptables-restore', '--noflush', file]);
}

/** Installs the chain from `file` and makes sure the hook jumps to it, once, first. */
export async function installOwnChain(run: Run, own: OwnChain, file: string): Promise<void> {
  await run('iptables-restore', ['--noflush', file]);
  await run('iptables', ['-t', own.table, '-C', own.hook, '-j', own.chain]).catch(() =>
    run('iptables', ['-t', own.table, '-I', own.hook, '1', '-j', own.chain]),
  );
}

/** Takes the chain away (rollback of a first apply, a role leaving the node); absent is fine. */
export async function removeOwnChain(run: Run, own: OwnChain): Promise<void> {
  const quiet = (args: string[]) => run('iptables', ['-t', own.table, ...args]).catch(() => undefined);
  // Every jump to it (one, unless someone added more), then the chain.
  for (let i = 0; i < 8; i++) if ((await quiet(['-D', own.hook, '-j', own.chain])) === undefined) break;
  await quiet(['-F', own.chain]);
  await quiet(['-X', own.chain]);
}
