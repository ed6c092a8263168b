/**
 * The `mammatus` command line (commander): the composition root of every CLI process. Each
 * subcommand lives in its own file and is loaded only when it runs (`mammatus version` loads
 * this file, commander and a few small shared pieces, 53 KB in all); this one wires them, the global flags (`--rpc-addr`,
 * `--rpc-auth`, as the serf CLI has them) and exit codes: 0 success, 1 failure, 2 usage error.
 */
import { Command, CommanderError, Option } from 'commander';
import { VERSION } from '../version.js';
import { collectKeyValue, collectList, UsageError, type CliIo, type GlobalOptions } from './common.js';
import type { InstanceOptions, RegisterOptions } from './instance.js';
import type { ImageImportOptions } from './image.js';
import type { LaunchOptions } from './launch.js';
import type { ProxyOptions, ServeOptions } from './metadata.js';
import type { MessagingServeOptions } from './messaging.js';
import { registerNodeCommands } from './node-commands.js';
import { registerVolumeCommands } from './volume-commands.js';
import { registerHostCommands } from './host-commands.js';
import { registerCaCommands } from './ca-commands.js';
import { registerLbCommands } from './lb-commands.js';
import type { QueryOptions } from './query.js';
import type { StatusOptions } from './status.js';
import type { TopOptions } from './top.js';
import { errorMessage } from '../../core/errors.js';

/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
/** Where the operator's ssh-agent and home are, from the environment the CLI runs in. */
function sshEnv(env: NodeJS.ProcessEnv): { agentSocket?: string; home?: string } {
  return { ...(env.SSH_AUTH_SOCK ? { agentSocket: env.SSH_AUTH_SOCK } : {}), ...(env.HOME ? { home: env.HOME } : {}) };
}

export async function runCli(argv: readonly string[], io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let code = 0;
  const program = new Command('mammatus')
    .description('mammatus: a private cloud for small clusters, driven by Serf')
    .version(VERSION, '-v, --version', 'print the version')
    .addOption(new Option('--rpc-addr <host:port>', 'RPC address of the local serf agent').env('SERF_RPC_ADDR').default('127.0.0.1:7373'))
    .addOption(new Option('--rpc-auth <key>', 'RPC auth key of the local serf agent').env('SERF_RPC_AUTH'))
    .addOption(
      new Option('--credentials <file>', 'node credentials for NATS commands (default: /var/lib/mammatus/credentials.json)').env(
        'MAMMATUS_CREDENTIALS',
      ),
    )
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  const g = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();
  const set = (p: Promise<number>) => p.then((c) => void (code = c));

  program
    .command('agent')
    .description('run the node agent (what mammatus-agent.service runs)')
    .option('-c, --config <path>', 'config file or directory (default /etc/mammatus/agent.yaml, or MAMMATUS_CONFIG)')
    .action((o: { config?: string }, cmd: Command) => {
      const gl = cmd.optsWithGlobals<GlobalOptions>();
      // Only flags typed on the command line override the config files: not the defaults, and not
      // SERF_RPC_ADDR exported for the CLI commands (the loader reads SERF_RPC_AUTH itself).
      const fromCli = (name: string) => program.getOptionValueSource(name) === 'cli';
      const serf = {
        ...(fromCli('rpcAddr') ? { rpc_addr: gl.rpcAddr } : {}),
        ...(fromCli('rpcAuth') && gl.rpcAuth ? { rpc_auth: gl.rpcAuth } : {}),
      };
      return set(
        import('../main.js').then(({ runAgent }) => runAgent({ path: o.config, env, overrides: { serf } }, (line) => io.err(line))),
      );
    });

  program
    .command('status')
    .description('show every member with its roles and their state; returns when all agents answered')
    .option('--json', 'print JSON')
    .option('--tag <key=value>', 'only members whose tag matches (regular expression), repeatable', collectKeyValue)
    .option('--timeout <duration>', "query timeout (default: serf's, 3.2 s for small clusters)")
    .option('--hosts', 'also list planned bare-metal hosts and how far each got (reads the registry over NATS)')
    .option('--nats <url>', 'NATS servers for --hosts (default: the controllers Serf knows)')
    .action((o: StatusOptions, cmd: Command) => set(import('./status.js').then((m) => m.statusCommand(g(cmd), o, io))));

  program
    .command('members')
    .description('list cluster members with their roles and agent versions')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }, cmd: Command) => set(import('./members.js').then((m) => m.membersCommand(g(cmd), o, io))));

  program
    .command('top')
    .description("a live view of nodes, roles, instances, queues and alerts from the controllers' Prometheus")
    .option('--prometheus <url>', "Prometheus to ask (default: this controller's, from the agent config, else 127.0.0.1:9090)")
    .option('-c, --config <path>', "agent config naming this controller's Prometheus (default /etc/mammatus/agent.yaml)")
    .option('--interval <duration>', 'refresh every DURATION (default 2s)')
    .option('--once', 'print one frame and exit')
    .option('--json', 'print the gathered data as JSON once')
    .action((o: TopOptions) => set(import('./top.js').then((m) => m.topCommand(o, io))));

  program
    .command('event')
    .description('send a user event to the cluster (like serf event)')
    .argument('<name>', 'event name, e.g. mammatus.reconcile')
    .argument('[payload]', 'payload (name + payload at most ~450 bytes; ~227 when signed)')
    .option('--coalesce', 'let serf coalesce events of the same name (drops earlier ones)')
    .option('--identity <file>', 'operator key that signs mammatus.* events (default: ssh-agent, then ~/.ssh/id_ed25519)')
    .action((name: string, payload: string | undefined, o: { coalesce?: boolean; identity?: string }, cmd: Command) =>
      set(import('./event.js').then((m) => m.eventCommand(g(cmd), name, payload, { ...o, ...sshEnv(env) }, io))),
    );

  program
    .command('query')
    .description('send a query and print acks and responses (like serf query)')
    .argument('<name>', 'query name, e.g. mammatus.ping')
    .argument('[payload]', 'payload')
    .option('--tag <key=value>', 'only nodes whose tag matches (regular expression), repeatable', collectKeyValue)
    .option('--node <name>', 'only this node, repeatable', collectList)
    .option('--timeout <duration>', "query timeout, e.g. 5s (default: serf's)")
    .option('--no-ack', 'do not request acks')
    .option('--json', 'print JSON')
    .option('--identity <file>', 'operator key that signs the ask of mammatus.leases (default: ssh-agent, then ~/.ssh/id_ed25519)')
    .action((name: string, payload: string | undefined, o: QueryOptions, cmd: Command) =>
      set(import('./query.js').then((m) => m.queryCommand(g(cmd), name, payload, { ...o, ...sshEnv(env) }, io))),
    );

  program
    .command('render')
    .description('show the files a role would write, applying nothing')
    .argument('<role>', 'gateway, compute, storage or controller')
    .requiredOption('--config <path>', 'config file to render from')
    .option('--out <dir>', 'write the files under this directory instead of printing them')
    .action((role: string, o: { config: string; out?: string }) => set(import('./render.js').then((m) => m.renderCommand(role, o, io))));

  const instance = program.command('instance').description('the instance registry (records in NATS JetStream on the controllers)');
  const natsFlag = '--nats <url>';
  const natsHelp = 'NATS servers, comma-separated (default: the controllers Serf knows, else nats://127.0.0.1:4222)';
  instance
    .command('register')
    .description('register an instance (a PXE host or a container) by its MAC')
    .argument('<name>', 'instance name: a DNS label, becomes <name>.mammatus')
    .requiredOption('--mac <mac>', 'MAC address of its NIC, repeatable (the first is the primary)', collectList)
    .option('--ip <ip>', 'IP address, repeatable', collectList)
    .option('--ssh-key <file>', 'file of OpenSSH public keys, repeatable', collectList)
    .option('--user-data <file>', 'user-data (cloud-config, script, MIME or gzip), at most 256 KiB')
    .option('--node <node>', 'the node it runs on')
    .option('--tag <key=value>', 'tag, repeatable', collectKeyValue)
    .option(natsFlag, natsHelp)
    .option('--json', 'print the record as JSON')
    .action((name: string, o: RegisterOptions, cmd: Command) =>
      set(import('./instance.js').then((m) => m.registerCommand(g(cmd), name, o, io))),
    );
  instance
    .command('list')
    .description('list registered instances')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((o: InstanceOptions, cmd: Command) => set(import('./instance.js').then((m) => m.listCommand(g(cmd), o, io))));
  instance
    .command('show')
    .description('show one instance')
    .argument('<name>', 'instance name or id')
    .option(natsFlag, natsHelp)
    .option('--json', 'print JSON')
    .action((name: string, o: InstanceOptions, cmd: Command) =>
      set(import('./instance.js').then((m) => m.showCommand(g(cmd), name, o, io))),
    );
  instance
    .command('rm')
    .description('remove an instance and free its name, MACs and IPs')
    .argument('<name>', 'instance name or id')
    .option(natsFlag, natsHelp)
    .option('--json', 'print the removed record as JSON')
    .action((name: string, o: InstanceOptions, cmd: Command) => set(import('./instance.js').then((m) => m.rmCommand(g(cmd), name, o, io))));

  // --- compute: container instances through the registry (launch.ts), images (image.ts) ---
  instance
    .command('launch')
    .description('record a container instance for a compute node to create and start (it follows the registry)')
    .argument('<name>', 'instance name: a DNS label, becomes <name>.mammatus')
    .requiredOption('--image <alias>', 'image alias on the compute node (mammatus image import)')
    .option('--node <node>', 'the compute node to run it on (default: the least loaded ready one, asked over Serf)')
    .option('--mac <mac>', 'MAC of its NIC (default: a random locally administered 02:… one)')
    .option('--user-data <file>', 'user-data (cloud-config, script, MIME or gzip), at most 256 KiB')
    .option('--ssh-key <file>', 'file of OpenSSH public keys, repeatable', collectList)
    .option('--wait [duration]', 'wait until it runs with an address (default 2m); exit 1 on an error or timeout')
    .option('--volume <name[:path]>', 'attach this volume (mounted at PATH, else a raw block device), repeatable', collectList)
    .option('--initiator <iqn>', "the compute node's iSCSI initiator IQN for --volume (default: its Serf tag iscsi)")
    .option(
      '--tag <key=value>',
      'tag, repeatable (load balancers select instances by tag: lb create --target tag:K=V:PORT)',
      collectKeyValue,
    )
    .option(natsFlag, natsHelp)
    .option('--json', 'print the record as JSON')
    .action((name: string, o: LaunchOptions, cmd: Command) => set(import('./launch.js').then((m) => m.launchCommand(g(cmd), name, o, io))));
  for (const [verb, state, what] of [
    ['start', 'running', 'start a stopped container instance'],
    ['stop', 'stopped', 'stop a container instance (it keeps its disk, name and address)'],
    ['delete', 'deleting', 'destroy a container instance; its compute node then removes the record'],
  ] as const) {
    instance
      .command(verb)
      .description(`${what} (sets the recorded state its compute node acts on)`)
      .argument('<name>', 'instance name or id')
      .option(natsFlag, natsHelp)
      .option('--json', 'print the record as JSON')
      .action((name: string, o: InstanceOptions, cmd: Command) =>
        set(import('./launch.js').then((m) => m.setStateCommand(g(cmd), name, state, o, io))),
      );
  }
  program
    .command('image')
    .description("instance images in this node's LXD")
    .command('import')
    .description('import an image tarball (LXD unified format, as scripts/build-image.sh makes) under an alias')
    .argument('<file>', 'the tarball')
    .requiredOption('--alias <alias>', 'alias to point at the image')
    .option('--replace', 're-point the alias when it names another image')
    .option('--lxd-socket <path>', "LXD's unix socket (default /var/lib/lxd/unix.socket)")
    .option('--json', 'print JSON')
    .action((file: string, o: ImageImportOptions) => set(import('./image.js').then((m) => m.imageImportCommand(file, o, io))));
  // --- end compute ---

  const metadata = program.command('metadata').description('the instance metadata service and its gateway proxy, run on their own');
  metadata
    .command('serve')
    .description('serve instance metadata (EC2, NoCloud, OpenStack trees) from the registry')
    .option(natsFlag, 'NATS servers of the registry (default: metadata.nats, nats://127.0.0.1:4222)')
    .option('--listen <host:port>', 'listen address (default: metadata.listen, 0.0.0.0:8775)')
    .option('-c, --config <path>', 'agent config to read metadata: from (default /etc/mammatus/agent.yaml)')
    .action((o: ServeOptions, cmd: Command) => set(import('./metadata.js').then((m) => m.serveCommand(g(cmd), o, io, env))));
  metadata
    .command('proxy')
    .description("forward instances' metadata requests to the service, with their signed IP and MAC")
    .option('--upstream <url>', 'metadata service URL, repeatable, tried in order (default: metadata.proxy.upstreams)', collectList)
    .option('--listen <host:port>', 'listen address (default: metadata.proxy.listen, 0.0.0.0:8776)')
    .option('--leases <file>', "dnsmasq lease file for callers' MACs (default: metadata.proxy.leases_file)")
    .option('-c, --config <path>', 'agent config with metadata.proxy_secret (default /etc/mammatus/agent.yaml)')
    .action((o: ProxyOptions) => set(import('./metadata.js').then((m) => m.proxyCommand(o, io, env))));

  program
    .command('messaging')
    .description('the SQS/SNS-compatible API on NATS JetStream, run on its own')
    .command('serve')
    .description('serve the SQS (Query and JSON) and SNS APIs with their state in JetStream')
    .option(natsFlag, 'NATS servers with JetStream (default: messaging.nats, nats://127.0.0.1:4222)')
    .option('--listen <host:port>', 'listen address (default: messaging.listen, 0.0.0.0:9324)')
    .option('-c, --config <path>', 'agent config to read messaging: from (default /etc/mammatus/agent.yaml)')
    .action((o: MessagingServeOptions, cmd: Command) =>
      set(import('./messaging.js').then((m) => m.messagingServeCommand(g(cmd), o, io, env))),
    );

  // Hidden: the agent runs its tenant-facing services this way, as an unprivileged user (docs/security.md).
  program
    .command('service', { hidden: true })
    .description('internal: services the agent runs as child processes')
    .command('run <name>')
    .description('run one service; its settings arrive over the IPC channel from the agent')
    .action((name: string) => set(import('./service-child.js').then((m) => m.serviceRunCommand(name))));

  registerNodeCommands(program, { g, set, io, env, natsFlag, natsHelp });
  registerVolumeCommands(program, { g, set, io, natsFlag, natsHelp });
  registerHostCommands(program, { g, set, io, natsFlag, natsHelp });
  registerCaCommands(program, { g, set, io, natsFlag, natsHelp });
  registerLbCommands(program, { g, set, io, natsFlag, natsHelp });

  program
    .command('version')
    .description('print the version')
    .action(() => io.out(`mammatus ${VERSION}`));

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2;
    }
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}`);
      return 2;
    }
    io.err(`error: ${errorMessage(err)}`);
    return 1;
  }
}
