/**
 * `mammatus volume attach|detach`: records which instance a volume belongs to. The compute node is
 * the instance's (`node` of its record); the initiator IQN that alone may log in is `--initiator`,
 * else the compute node's Serf tag `iscsi` (its `/etc/iscsi/initiatorname.iscsi` name, published
 * by its agent), read over the local serf agent. The storage node then admits that initiator (with
 * the volume's CHAP) and the compute node logs in.
 */
import { errorMessage } from '../../core/errors.js';
import { isIqn, type VolumeAttachment } from '../../core/volume-record.js';
import { InstanceNotFoundError, InstanceRegistry } from '../../src/registry/registry.js';
import { connect, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { redact, withVolumes, type VolumeOptions } from './volume.js';

/** The Serf tag a compute node publishes its iSCSI initiator name in. */
export const ISCSI_TAG = 'iscsi';

/** `attach` flags. */
export interface VolumeAttachOptions extends VolumeOptions {
  instance: string;
  path?: string;
  initiator?: string;
}

/** The compute node's initiator IQN from its Serf tag; a string error when it cannot be had. */
export async function initiatorOf(g: GlobalOptions, node: string): Promise<{ iqn: string } | { error: string }> {
  let tags: Readonly<Record<string, string>> | undefined;
  try {
    const client = await connect(g);
    try {
      tags = (await client.members()).find((m) => m.name === node)?.tags;
    } finally {
      client.close();
    }
  } catch (err) {
    return { error: `cannot ask serf for ${node}'s initiator name (${errorMessage(err)}); pass --initiator` };
  }
  if (!tags) return { error: `${node} is not a member of the cluster; pass --initiator` };
  const iqn = tags[ISCSI_TAG];
  if (!iqn) return { error: `${node} publishes no initiator name (Serf tag ${ISCSI_TAG}); pass --initiator` };
  if (!isIqn(iqn)) return { error: `${node}'s Serf tag ${ISCSI_TAG} is not an iqn. name: ${JSON.stringify(iqn)}` };
  return { iqn };
}

/** `volume attach NAME --instance I [--path P] [--initiator IQN]` */
export async function attachCommand(g: GlobalOptions, name: string, opts: VolumeAttachOptions, io: CliIo): Promise<number> {
  if (!opts.instance) throw new UsageError('--instance is required');
  if (opts.initiator !== undefined && !isIqn(opts.initiator)) throw new UsageError(`--initiator: not an iqn. name: ${opts.initiator}`);
  if (opts.path !== undefined && !/^\/[^\0\n]*$/.test(opts.path)) throw new UsageError(`--path must be absolute: ${opts.path}`);
  return withVolumes(g, opts, io, async (registry, nc) => {
    let node: string | undefined;
    try {
      node = (await (await InstanceRegistry.open(nc)).get(opts.instance)).node;
    } catch (err) {
      if (!(err instanceof InstanceNotFoundError)) throw err;
      io.err(`error: ${err.message}`);
      return 1;
    }
    if (!node) {
      io.err(`error: instance ${opts.instance} runs on no compute node (a PXE host?): nothing would log in`);
      return 1;
    }
    let initiator = opts.initiator;
    if (!initiator) {
      const found = await initiatorOf(g, node);
      if ('error' in found) {
        io.err(`error: ${found.error}`);
        return 1;
      }
      initiator = found.iqn;
    }
    const attachment: VolumeAttachment = { instance: opts.instance, node, initiator, ...(opts.path ? { path: opts.path } : {}) };
    const v = await registry.attach(name, attachment);
    io.out(opts.json ? JSON.stringify(redact(v), null, 2) : `attaching ${name} to ${opts.instance} on ${node} (initiator ${initiator})`);
    return 0;
  });
}

/** `volume detach NAME` */
export function detachCommand(g: GlobalOptions, name: string, opts: VolumeOptions, io: CliIo): Promise<number> {
  return withVolumes(g, opts, io, async (registry) => {
    const before = await registry.get(name);
    const v = await registry.detach(name);
    const what = before.attached ? `detaching ${name} from ${before.attached.instance}` : `${name} is attached to nothing`;
    io.out(opts.json ? JSON.stringify(redact(v), null, 2) : what);
    return 0;
  });
}
