/**
 * The wiring of `mammatus ca init|rotate|status` (commander): flags, help texts, and the lazily loaded
 * command each runs (ca.ts). Split from program.ts.
 */
import type { Command } from 'commander';
import type { CaInitOptions, CaRotateOptions, CaStatusOptions } from './ca.js';
import type { NodeWiring } from './node-commands.js';

/** Adds `ca` and its subcommands to `program`. */
export function registerCaCommands(program: Command, w: Omit<NodeWiring, 'env'>): void {
  const { g, set, io, natsFlag, natsHelp } = w;
  const load = () => import('./ca.js');
  const ca = program.command('ca').description("the cluster's certificate authority: root, intermediate, node certificates (docs/ca.md)");
  ca.command('init')
    .description("make the cluster's root and intermediate (on a controller) and print the root's SHA-256 fingerprint")
    .option('--root-key-out <file>', 'write the root key here (mode 0600) for offline keeping instead of storing it on the controllers')
    .option('--force', 'replace an existing CA (every node must then be admitted again to pin the new root)')
    .option('--replicas <n>', 'JetStream replicas of the CA buckets when they are created (default 1)')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((o: CaInitOptions, cmd: Command) => set(load().then((m) => m.initCommand(g(cmd), o, io))));
  ca.command('rotate')
    .description('make a new intermediate under the same root (on a controller); nodes and instances keep trusting the root')
    .option('--root-key <file>', 'the root key, when ca init --root-key-out kept it off the cluster')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((o: CaRotateOptions, cmd: Command) => set(load().then((m) => m.rotateCommand(g(cmd), o, io))));
  ca.command('status')
    .description("issuer and expiry of the root and the intermediate, and each node's certificate: expiry, next renewal, last error")
    .option('--timeout <duration>', 'how long to wait for the agents (Serf query timeout)')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((o: CaStatusOptions, cmd: Command) => set(load().then((m) => m.statusCommand(g(cmd), o, io))));
}
