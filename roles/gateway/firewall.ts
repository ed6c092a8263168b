/**
 * Applying the rendered iptables ruleset safely. `iptables-restore --test` misses errors the kernel
 * rejects (a jump to a missing chain on nf_tables), so a ruleset is validated by really restoring
 * it into a scratch network namespace. Before the first restore the current rules are saved; an
 * empty save restores nothing, so then the explicit open baseline is the rollback target.
 */
import type { Run } from '../../core/contracts.js';

/**
 * Restores `file` into a throw-away network namespace that lives only as long as this one command
 * (`unshare -n`), so nothing is left behind even if the agent dies; throws with iptables' message.
 */
export async function validateRuleset(run: Run, file: string): Promise<void> {
  await run('unshare', ['--net', '--', 'iptables-restore', file]);
}

/** Holds what to go back to when the role's ruleset must be withdrawn. */
export class Firewall {
  private before: string | undefined;

  constructor(private readonly baseline: string) {}

  /**
   * Installs the ruleset in `file` (all tables it names are replaced atomically per table), saving
   * the rules in force before the first install. With `file` absent (a rollback of the first apply,
   * or the role leaving the node), restores what was there before.
   */
  async apply(run: Run, file: string, exists: boolean): Promise<void> {
    if (this.before === undefined) {
      const saved = (await run('iptables-save', [])).stdout;
      this.before = /^\*(filter|nat)$/m.test(saved) ? withBothTables(saved, this.baseline) : this.baseline;
    }
    if (exists) await run('iptables-restore', [file]);
    else await run('iptables-restore', [], { input: this.before });
  }
}

/** A save that names only some of the tables we manage gets the baseline's block for the others. */
function withBothTables(saved: string, baseline: string): string {
  let out = saved.endsWith('\n') ? saved : `${saved}\n`;
  for (const table of ['filter', 'nat']) {
    if (new RegExp(`^\\*${table}$`, 'm').test(saved)) continue;
    const block = new RegExp(`^\\*${table}\\n[\\s\\S]*?^COMMIT$`, 'm').exec(baseline)?.[0];
    if (block) out += `${block}\n`;
  }
  return out;
}
