/**
 * open-iscsi's part, stood in for where the kernel has no `iscsi_tcp` (this machine, most CI
 * runners): a `Run` that answers `iscsiadm` the way open-iscsi does (session and node lists,
 * exit 15/21 codes) and makes a "login" real on the block layer by linking the volume's by-path name
 * (`/dev/disk/by-path/ip-…-iscsi-<IQN>-lun-<n>`) to a loop device the test set up. Everything else
 * goes to the real runner, so LXD, udev-less device handling and the role's order stay real.
 * The storage side is proven with real tgtd and libiscsi elsewhere (storage-tgt.test.ts).
 */
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import type { Run } from '../../core/contracts.js';
import { commandFailed } from './recording-run.js';

/** The stand-in and what it did. */
export interface IscsiStandIn {
  readonly run: Run;
  /** `login <iqn>` / `logout <iqn>` / `delete <iqn>`, in order. */
  readonly calls: string[];
  /** Removes the links it made. */
  cleanup(): void;
}

/**
 * Wraps `inner`: `iscsiadm` is answered here; a login of IQN `t` links the by-path name to
 * `devices.get(t)` (a login of an unknown target fails as an unreachable portal does, exit 8).
 */
export function iscsiStandIn(inner: Run, devices: ReadonlyMap<string, string>): IscsiStandIn {
  const sessions = new Map<string, string>(); // iqn → "ip:3260,1 iqn"
  const nodes = new Map<string, string>();
  const links = new Map<string, string>(); // iqn → by-path link
  const calls: string[] = [];
  const list = (argv: readonly string[], m: Map<string, string>, prefix: string) =>
    m.size
      ? { stdout: [...m.values()].map((l, i) => `${prefix.replace('#', String(i + 1))}${l}`).join('\n') + '\n', stderr: '', exitCode: 0 }
      : Promise.reject(commandFailed(argv, 21, 'iscsiadm: No active sessions.'));
  const run: Run = async (file, args, options) => {
    if (file !== 'iscsiadm') return inner(file, args, options);
    const argv = [file, ...args];
    const a = args.join(' ');
    if (a === '-m session') return list(argv, sessions, 'tcp: [#] ');
    if (a === '-m node') return list(argv, nodes, '');
    const iqn = args[args.indexOf('-T') + 1];
    const portal = args[args.indexOf('-p') + 1];
    const lun = 1;
    const link = `/dev/disk/by-path/ip-${portal}-iscsi-${iqn}-lun-${lun}`;
    if (args.includes('--login')) {
      calls.push(`login ${iqn}`);
      if (sessions.has(iqn)) throw commandFailed(argv, 15, 'iscsiadm: default: 1 session requested, but 1 already present.');
      const dev = devices.get(iqn);
      if (!dev) throw commandFailed(argv, 8, 'iscsiadm: connection login retries (reopen_max) 5 exceeded');
      mkdirSync(path.dirname(link), { recursive: true });
      rmSync(link, { force: true });
      symlinkSync(dev, link);
      links.set(iqn, link);
      sessions.set(iqn, `${portal},1 ${iqn} (non-flash)`);
      nodes.set(iqn, `${portal},1 ${iqn}`);
      return { stdout: '', stderr: '', exitCode: 0 };
    }
    if (args.includes('--logout')) {
      calls.push(`logout ${iqn}`);
      if (!sessions.delete(iqn)) throw commandFailed(argv, 21, 'iscsiadm: No matching sessions found');
      rmSync(links.get(iqn) ?? link, { force: true });
      links.delete(iqn);
      return { stdout: '', stderr: '', exitCode: 0 };
    }
    if (args.includes('delete')) {
      calls.push(`delete ${iqn}`);
      if (!nodes.delete(iqn)) throw commandFailed(argv, 21, 'iscsiadm: No records found');
      return { stdout: '', stderr: '', exitCode: 0 };
    }
    throw commandFailed(argv, 7, `iscsiadm stand-in: ${a} is not known`);
  };
  return {
    run,
    calls,
    cleanup: () => {
      for (const l of links.values()) rmSync(l, { force: true });
      links.clear();
    },
  };
}
