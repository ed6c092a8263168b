/** Firewall apply/rollback with a recording runner. */
import { describe, expect, it } from 'vitest';
import { Firewall, validateRuleset } from '../../../roles/gateway/firewall.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';

const BASELINE = '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n';

describe('Firewall', () => {
  it('restores the open baseline on rollback when nothing was installed before (empty save)', async () => {
    const inputs: (string | undefined)[] = [];
    const run = recordingRun((argv, o) => {
      if (argv[0] === 'iptables-restore') inputs.push(o?.input);
      return argv[0] === 'iptables-save' ? { stdout: '', stderr: '', exitCode: 0 } : undefined;
    });
    const fw = new Firewall(BASELINE);
    await fw.apply(run, '/etc/g/iptables.rules', true);
    await fw.apply(run, '/etc/g/iptables.rules', false);
    expect(run.calls).toEqual([['iptables-save'], ['iptables-restore', '/etc/g/iptables.rules'], ['iptables-restore']]);
    expect(inputs).toEqual([undefined, BASELINE]);
  });

  it('keeps the rules in force before, adding a baseline block for a table they lack', async () => {
    const saved = '*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n';
    const inputs: (string | undefined)[] = [];
    const run = recordingRun((argv, o) => {
      if (argv[0] === 'iptables-restore') inputs.push(o?.input);
      return argv[0] === 'iptables-save' ? { stdout: saved, stderr: '', exitCode: 0 } : undefined;
    });
    const fw = new Firewall(BASELINE);
    await fw.apply(run, '/r', true);
    await fw.apply(run, '/r', false);
    expect(inputs[1]).toBe(`${saved}*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n`);
  });
});

describe('validateRuleset', () => {
  it('restores into a namespace of its own, which ends with the command', async () => {
    const run = recordingRun((argv) => (argv.includes('iptables-restore') ? commandFailed(argv, 2, 'line 3 failed') : undefined));
    await expect(validateRuleset(run, '/r')).rejects.toThrow();
    expect(run.calls).toEqual([['unshare', '--net', '--', 'iptables-restore', '/r']]);
  });
});
