/**
 * The wiring of `mammatus lb create|list|show|rm` (commander): flags, help texts, and the lazily
 * loaded command each runs (lb.ts). Split from program.ts.
 */
import { Option, type Command } from 'commander';
import { LB_BALANCE, LB_MODES, LB_TLS } from '../../src/lb/record.js';
import { collectList } from './common.js';
import type { NodeWiring } from './node-commands.js';
import type { LbCreateOptions, LbOptions } from './lb.js';

/** Adds `lb` and its subcommands to `program`. */
export function registerLbCommands(program: Command, w: Omit<NodeWiring, 'env'>): void {
  const { g, set, io, natsFlag, natsHelp } = w;
  const load = () => import('./lb.js');
  const lb = program.command('lb').description('load balancers the gateway runs (docs/loadbalancer.md)');
  lb.command('create')
    .description('record a load balancer; gateways render it and follow its targets')
    .argument('<name>', 'balancer name: a DNS label')
    .requiredOption(
      '--listen <[addr:]port>',
      'where the gateway listens: a port, or IPv4:port (IPv6 is refused: the firewall is IPv4 only)',
    )
    .addOption(new Option('--mode <mode>', 'http (routes by Host and path) or tcp').choices(LB_MODES).makeOptionMandatory())
    .option('--host <name>', 'a host name it answers for (Host, or SNI with --tls passthrough), repeatable; none = every name', collectList)
    .option('--path <prefix>', 'http only: a path prefix (default: every path)')
    .option('--target <selector:port>', 'instance:NAME:PORT, tag:KEY=VALUE:PORT or member:NAME:PORT, repeatable', collectList)
    .option('--health <path|tcp>', 'health check: an HTTP path (http mode) or tcp (default tcp)')
    .addOption(
      new Option('--tls <kind>', 'none, acme (http, terminated at the gateway) or passthrough (tcp, by SNI)')
        .choices(LB_TLS)
        .default('none'),
    )
    .addOption(new Option('--balance <how>', 'how requests are spread').choices(LB_BALANCE).default('roundrobin'))
    .option(natsFlag, natsHelp)
    .option('--json', 'print the record as JSON')
    .action((name: string, o: LbCreateOptions, cmd: Command) => set(load().then((m) => m.createCommand(g(cmd), name, o, io))));
  lb.command('list')
    .description('list load balancers')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((o: LbOptions, cmd: Command) => set(load().then((m) => m.listCommand(g(cmd), o, io))));
  lb.command('show')
    .description('show one load balancer')
    .argument('<name>', 'balancer name')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((name: string, o: LbOptions, cmd: Command) => set(load().then((m) => m.showCommand(g(cmd), name, o, io))));
  lb.command('rm')
    .description('remove a load balancer (gateways stop serving it at their next apply)')
    .argument('<name>', 'balancer name')
    .option(natsFlag, natsHelp)
    .option('--json', 'print the removed record as JSON')
    .action((name: string, o: LbOptions, cmd: Command) => set(load().then((m) => m.rmCommand(g(cmd), name, o, io))));
}
