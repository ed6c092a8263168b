/**
 * The wiring of `mammatus node add|remove|admit|revoke|list|join` (commander): flags, help texts, and
 * the lazily loaded command each runs (node.ts, node-add.ts, node-remove.ts, node-join.ts). Split
 * from program.ts.
 */
import type { Command } from 'commander';
import { collectList, type CliIo, type GlobalOptions } from './common.js';
import type { AdmitOptions, NodeOptions } from './node.js';
import type { NodeAddOptions } from './node-add.js';
import type { NodeRemoveOptions } from './node-remove.js';
import type { NodeJoinOptions } from './node-join.js';

/** What program.ts hands the node subcommands. */
export interface NodeWiring {
  /** The global flags of a subcommand. */
  readonly g: (cmd: Command) => GlobalOptions;
  /** Records a command's exit code. */
  readonly set: (p: Promise<number>) => Promise<void>;
  readonly io: CliIo;
  readonly env: NodeJS.ProcessEnv;
  readonly natsFlag: string;
  readonly natsHelp: string;
}

/** Adds `node` and its subcommands to `program`. */
export function registerNodeCommands(program: Command, w: NodeWiring): void {
  const { g, set, io, env, natsFlag, natsHelp } = w;
  const node = program.command('node').description('who belongs to the cluster: admission, revocation, the roster (docs/security.md)');
  node
    .command('admit')
    .description("mint a node's credentials (on a controller); the first controller of a new cluster admits itself")
    .argument('<name>', "the node's Serf name")
    .requiredOption('--role <roles>', 'roles it may take, comma-separated or repeated', collectList)
    .option('--out <file>', "where to write its credentials, mode 0600 ('-': stdout; default: this node's file when NAME is this node)")
    .option(natsFlag, natsHelp)
    .option('--json', 'print the roster entry as JSON')
    .action((name: string, o: AdmitOptions, cmd: Command) => set(import('./node.js').then((m) => m.admitCommand(g(cmd), name, o, io))));
  node
    .command('revoke')
    .description("revoke a node's credentials: every controller refuses it within seconds")
    .argument('<name>', "the node's name")
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((name: string, o: NodeOptions, cmd: Command) => set(import('./node.js').then((m) => m.revokeCommand(g(cmd), name, o, io))));
  const sshFlags = (cmd: Command) =>
    cmd
      .option('--identity <file>', 'private key to log in with (else ssh-agent, then ~/.ssh/id_ed25519, id_rsa)')
      .option('--port <n>', 'SSH port (default 22)')
      .option(
        '--accept-new',
        'trust the host key on first contact (like StrictHostKeyChecking=accept-new); a changed key is always refused',
      )
      .option('--known-hosts <file>', 'known_hosts file (default ~/.ssh/known_hosts)');
  sshFlags(
    node
      .command('add')
      .description('make a Debian/Ubuntu host a node over SSH: credentials, Serf config, packages, services; waits until it is ok')
      .argument('<host>', '[USER@]HOST to log in to as root (or a user with sudo -n)')
      .requiredOption('--role <roles>', 'roles it may take, comma-separated or repeated', collectList),
  )
    .option('--name <node>', "its Serf node name (default: the host's hostname)")
    .option('--replace', 'take the name over when another node holds it (in the roster, or alive in Serf elsewhere): that node is revoked')
    .option('--apt-repo <url>', "the cluster's apt repository (with --apt-key); unreachable = the .deb is copied instead")
    .option('--apt-key <file>', "the repository's signing key (armoured .asc or binary .gpg)")
    .option('--deb <file>', 'the mammatus-agent .deb to copy when there is no reachable repository')
    .option('--bind <addr:port>', "Serf's gossip address on the node (default: Serf's, 0.0.0.0:7946)")
    .option('--rpc <addr:port>', "Serf's RPC address on the node (default 127.0.0.1:7373)")
    .option('--timeout <duration>', 'how long to wait for every role to be ok (default 5m)')
    .option(natsFlag, natsHelp)
    .option('--json', 'print {node, steps, total_ms} as JSON (progress lines go to stderr)')
    .action((host: string, o: NodeAddOptions, cmd: Command) =>
      set(import('./node-add.js').then((m) => m.nodeAddCommand(g(cmd), host, o, io, env))),
    );
  sshFlags(
    node
      .command('remove')
      .description(
        'remove a node: revoke it, force it out of Serf, then stop it over SSH (with a host that proves to be NAME); --purge removes the package',
      )
      .argument('<name>', "the node's name")
      .argument('[host]', '[USER@]HOST to stop (and with --purge clean) over SSH'),
  )
    .option('--purge', 'also purge mammatus-agent and delete its credentials and configs (needs the host)')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((name: string, host: string | undefined, o: NodeRemoveOptions, cmd: Command) =>
      set(import('./node-remove.js').then((m) => m.nodeRemoveCommand(g(cmd), name, host, o, io, env))),
    );
  node
    .command('join')
    .description(
      'on a planned bare-metal host: exchange its one-time join secret for credentials and write them with the Serf config (docs/baremetal.md); then restart serf and the agent',
    )
    .requiredOption('--secret-file <file>', 'the file holding the join secret (its content is never printed)')
    .option('--metadata-url <url>', 'the metadata service, through the gateway (default http://169.254.169.254)')
    .option('--state-dir <dir>', "the agent's state_dir: credentials.json and authority.pub (default /var/lib/mammatus)")
    .option('--serf-config <file>', "Serf's config file to write (default /etc/serf/mammatus.json)")
    .option('--serf-tags <file>', "Serf's tags file, for the role tag (default /var/lib/serf/tags.json)")
    .option('--agent-config <file>', "the agent's drop-in pointing it at Serf (default /etc/mammatus/agent.d/10-bootstrap.yaml)")
    .option('--json', 'print {node, roles, files} as JSON')
    .action((o: NodeJoinOptions) => set(import('./node-join.js').then((m) => m.nodeJoinCommand(o, io))));
  node
    .command('list')
    .description('list the admitted nodes (the roster)')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((o: NodeOptions, cmd: Command) => set(import('./node.js').then((m) => m.listNodesCommand(g(cmd), o, io))));
}
