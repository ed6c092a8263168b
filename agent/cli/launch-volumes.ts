/**
 * `instance launch … --volume NAME[:PATH]`: volumes attached to an instance at its creation. Every
 * volume is checked before the instance is recorded (it exists, is not being deleted, is attached
 * to nothing or to an instance of this name: a rebuild keeps its volume), and the compute node's
 * initiator IQN is found (`--initiator`, else its Serf tag `iscsi`); only then is the launch
 * recorded, and the volumes attached after it.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { isIqn } from '../../core/volume-record.js';
import { VolumeRegistry } from '../../src/registry/volumes.js';
import { UsageError, type GlobalOptions } from './common.js';
import { initiatorOf } from './volume-attach.js';

/** One `--volume` flag. */
export interface VolumeSpec {
  readonly name: string;
  readonly path?: string;
}

/** Parses `--volume NAME[:PATH]` flags; @throws UsageError */
export function parseVolumeFlags(flags: readonly string[] | undefined, initiator: string | undefined): VolumeSpec[] {
  if (initiator !== undefined && !isIqn(initiator)) throw new UsageError(`--initiator: not an iqn. name: ${initiator}`);
  const specs = (flags ?? []).map((flag) => {
    const i = flag.indexOf(':');
    const name = i < 0 ? flag : flag.slice(0, i);
    const path = i < 0 ? undefined : flag.slice(i + 1);
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) throw new UsageError(`--volume ${flag}: not a volume name`);
    if (path !== undefined && !/^\/[^\0\n]*$/.test(path)) throw new UsageError(`--volume ${flag}: the path must be absolute`);
    return { name, ...(path !== undefined ? { path } : {}) };
  });
  const names = specs.map((s) => s.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new UsageError(`--volume ${twice} given twice`);
  return specs;
}

/**
 * Checks the volumes for instance `instance` on compute node `node`; returns the attach step to
 * run once the instance is recorded, or why the launch must not happen.
 */
export async function prepareVolumes(
  g: GlobalOptions,
  nc: NatsConnection,
  instance: string,
  node: string,
  specs: readonly VolumeSpec[],
  initiatorFlag: string | undefined,
): Promise<{ attach: () => Promise<string[]> } | { error: string }> {
  if (!specs.length) return { attach: () => Promise.resolve([]) };
  const volumes = await VolumeRegistry.open(nc);
  for (const s of specs) {
    const v = await volumes.find(s.name);
    if (!v) return { error: `no volume ${s.name}` };
    if (v.state === 'deleting') return { error: `volume ${s.name} is being deleted` };
    if (v.attached && v.attached.instance !== instance)
      return { error: `volume ${s.name} is attached to ${v.attached.instance}; detach it first` };
  }
  let initiator = initiatorFlag;
  if (!initiator) {
    const found = await initiatorOf(g, node);
    if ('error' in found) return { error: `cannot attach volumes: ${found.error}` };
    initiator = found.iqn;
  }
  const iqn = initiator;
  return {
    attach: async () => {
      const done: string[] = [];
      for (const s of specs) {
        await volumes.attach(s.name, { instance, node, initiator: iqn, ...(s.path ? { path: s.path } : {}) });
        done.push(s.path ? `${s.name}:${s.path}` : s.name);
      }
      return done;
    },
  };
}
