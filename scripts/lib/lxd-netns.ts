/**
 * A compute node for the end-to-end test: a network namespace joined to a gateway bed's switch, and
 * an LXD daemon of its own inside it (scripts/lib/lxd-node.ts, shared with the local cluster).
 * Nothing of it exists in the root network namespace. `destroy()` stops the daemon (by its PID),
 * deletes the namespace and the directory.
 */
import { rmSync } from 'node:fs';
import { mustRun, runCommand, startLxdDaemon, type CommandResult, type LxdDaemon } from './lxd-node.js';
import type { GatewayBed } from './netns-bed.js';

/** The compute node. */
export interface LxdNode extends AsyncDisposable {
  /** Its network namespace. */
  readonly ns: string;
  /** Its LAN interface (the macvlan parent), inside `ns`. */
  readonly lan: string;
  readonly lxdDir: string;
  readonly socket: string;
  /** Runs `lxc …` against this daemon; never throws. */
  lxc(args: readonly string[], timeoutMs?: number): Promise<CommandResult>;
  log(): string;
  destroy(): Promise<void>;
}

/** Creates the namespace `<bed id>-cn` with `cn-lan` on the bed's switch, and starts LXD in it. */
export async function startLxdNode(bed: GatewayBed, dir: string): Promise<LxdNode> {
  const ns = `${bed.id}-cn`;
  const lan = 'cn-lan';
  let daemon: LxdDaemon | undefined;
  const destroy = async () => {
    await daemon?.stop();
    const pids = (await runCommand('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await runCommand('ip', ['netns', 'del', ns]);
    // LXD's idmapped files need root to remove; the test runs as root.
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await mustRun('ip', ['netns', 'add', ns]);
    await mustRun('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await mustRun('ip', ['link', 'add', lan, 'netns', ns, 'type', 'veth', 'peer', 'name', 'p-cn', 'netns', bed.ns.sw]);
    await mustRun('ip', ['-n', bed.ns.sw, 'link', 'set', 'p-cn', 'master', bed.ifaces.br]);
    await mustRun('ip', ['-n', bed.ns.sw, 'link', 'set', 'p-cn', 'up']);
    await mustRun('ip', ['-n', ns, 'link', 'set', lan, 'up']);
    daemon = await startLxdDaemon({ ns, dir });
  } catch (err) {
    await destroy().catch(() => undefined);
    throw err;
  }
  const d = daemon;
  return {
    ns,
    lan,
    lxdDir: d.lxdDir,
    socket: d.socket,
    lxc: (args, timeoutMs) => d.lxc(args, timeoutMs),
    log: () => d.log(),
    destroy,
    [Symbol.asyncDispose]: destroy,
  };
}
