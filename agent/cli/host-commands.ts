/**
 * The wiring of `mammatus host register|list|show|rm|rejoin` (commander): flags, help texts, and
 * the lazily loaded command each runs (host.ts). Split from program.ts.
 */
import type { Command } from 'commander';
import { collectList } from './common.js';
import type { HostRegisterOptions } from './host.js';
import type { InstanceOptions } from './instance.js';
import type { NodeWiring } from './node-commands.js';

/** Adds `host` and its subcommands to `program`. */
export function registerHostCommands(program: Command, w: Omit<NodeWiring, 'env'>): void {
  const { g, set, io, natsFlag, natsHelp } = w;
  const load = () => import('./host.js');
  const host = program.command('host').description('bare-metal hosts that PXE-boot from the gateway into nodes (docs/baremetal.md)');
  host
    .command('register')
    .description('plan a host: its record, its one-time join secret (bound to its MAC), its boot entry')
    .argument('<name>', 'host name: a DNS label; its node name and <name>.mammatus')
    .requiredOption('--mac <mac>', 'MAC address of the NIC it boots from')
    .requiredOption('--role <roles>', 'roles it joins with, comma-separated (gateway, compute, storage, controller)')
    .option('--arch <arch>', 'firmware: bios, efi64, arm64 or rpi (Raspberry Pi 4/5 EEPROM network boot; default bios)')
    .option('--ssh-key <file>', 'file of OpenSSH public keys for its admin user, repeatable', collectList)
    .option('--install-disk <dev>', 'install to this whole disk (e.g. /dev/sda) and boot from it after; default: diskless')
    .option('--expires <duration>', 'how long the join secret is accepted (default 24h)')
    .option(natsFlag, natsHelp)
    .option('--json', 'print the record as JSON (the join secret is never printed)')
    .action((name: string, o: HostRegisterOptions, cmd: Command) => set(load().then((m) => m.registerCommand(g(cmd), name, o, io))));
  host
    .command('list')
    .description('list planned hosts and how far each got (registered, booted, seeded, joined, installed, ok)')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((o: InstanceOptions, cmd: Command) => set(load().then((m) => m.listCommand(g(cmd), o, io))));
  host
    .command('show')
    .description('show one host with the time of each step')
    .argument('<name>', 'host name or id')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((name: string, o: InstanceOptions, cmd: Command) => set(load().then((m) => m.showCommand(g(cmd), name, o, io))));
  host
    .command('rm')
    .description('remove a planned host and its join secret (a joined node stays a member: mammatus node remove)')
    .argument('<name>', 'host name or id')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((name: string, o: InstanceOptions, cmd: Command) => set(load().then((m) => m.rmCommand(g(cmd), name, o, io))));
  host
    .command('rejoin')
    .description('give a host a new join secret (a diskless host after a reboot, a reinstall); progress back to registered')
    .argument('<name>', 'host name or id')
    .option('--expires <duration>', 'how long the new secret is accepted (default 24h)')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((name: string, o: InstanceOptions & { expires?: string }, cmd: Command) =>
      set(load().then((m) => m.rejoinCommand(g(cmd), name, o, io))),
    );
}
