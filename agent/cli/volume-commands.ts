/**
 * The wiring of `mammatus volume create|list|show|rm|attach|detach|resize` (commander): flags, help
 * texts, and the lazily loaded command each runs (volume.ts, volume-attach.ts). Split from program.ts.
 */
import type { Command } from 'commander';
import type { NodeWiring } from './node-commands.js';
import type { VolumeCreateOptions, VolumeOptions, VolumeRmOptions, VolumeShowOptions } from './volume.js';
import type { VolumeAttachOptions } from './volume-attach.js';

/** Adds `volume` and its subcommands to `program`. */
export function registerVolumeCommands(program: Command, w: Omit<NodeWiring, 'env'>): void {
  const { g, set, io, natsFlag, natsHelp } = w;
  const load = () => import('./volume.js');
  const volume = program.command('volume').description('block volumes served over iSCSI by storage nodes (docs/storage.md)');
  volume
    .command('create')
    .description('record a volume for a storage node to serve')
    .argument('<name>', 'volume name: a DNS label (part of its IQN)')
    .requiredOption('--size <size>', 'size, e.g. 512M, 10G, 1T (powers of 1024)')
    .option('--node <node>', 'the storage node to serve it (default: the ready one with the most free space, asked over Serf)')
    .option('--wait [duration]', 'wait until its storage node serves it (default 2m); exit 1 on an error or timeout')
    .option(natsFlag, natsHelp)
    .option('--json', 'print the record as JSON (CHAP secret hidden)')
    .action((name: string, o: VolumeCreateOptions, cmd: Command) => set(load().then((m) => m.createCommand(g(cmd), name, o, io))));
  volume
    .command('list')
    .description('list volumes with their storage node, attachment and what the node reports')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON (CHAP secrets hidden)')
    .action((o: VolumeOptions, cmd: Command) => set(load().then((m) => m.listCommand(g(cmd), o, io))));
  volume
    .command('show')
    .description('show one volume')
    .argument('<name>', 'volume name')
    .option('--show-secret', 'print the CHAP secret too')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((name: string, o: VolumeShowOptions, cmd: Command) => set(load().then((m) => m.showCommand(g(cmd), name, o, io))));
  volume
    .command('rm')
    .description('delete a detached volume: its storage node removes target and backing, then the record')
    .argument('<name>', 'volume name')
    .option('--wait [duration]', 'wait until the record is gone (default 2m)')
    .option('--force', 'remove the record at once, touching nothing on the storage node (a node gone for good)')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((name: string, o: VolumeRmOptions, cmd: Command) => set(load().then((m) => m.rmCommand(g(cmd), name, o, io))));
  volume
    .command('attach')
    .description("attach a volume to an instance: its compute node's initiator may then log in")
    .argument('<name>', 'volume name')
    .requiredOption('--instance <name>', 'the instance (its record names the compute node)')
    .option('--path <path>', 'mount it there in the instance (default: a raw block device)')
    .option('--initiator <iqn>', "the compute node's initiator IQN (default: its Serf tag iscsi)")
    .option(natsFlag, natsHelp)
    .option('--json', 'print the record as JSON')
    .action((name: string, o: VolumeAttachOptions, cmd: Command) =>
      set(import('./volume-attach.js').then((m) => m.attachCommand(g(cmd), name, o, io))),
    );
  volume
    .command('detach')
    .description('detach a volume from its instance')
    .argument('<name>', 'volume name')
    .option(natsFlag, natsHelp)
    .option('--json', 'print the record as JSON')
    .action((name: string, o: VolumeOptions, cmd: Command) =>
      set(import('./volume-attach.js').then((m) => m.detachCommand(g(cmd), name, o, io))),
    );
  volume
    .command('resize')
    .description('grow a volume (never shrinks)')
    .argument('<name>', 'volume name')
    .requiredOption('--size <size>', 'the new size, e.g. 20G')
    .option(natsFlag, natsHelp)
    .option('--json', 'print the record as JSON')
    .action((name: string, o: VolumeOptions & { size: string }, cmd: Command) =>
      set(load().then((m) => m.resizeCommand(g(cmd), name, o, io))),
    );
}
