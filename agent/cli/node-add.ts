/**
 * `mammatus node add [USER@]HOST --role R…`: run on a controller (it holds the cluster authority and
 * Serf's gossip key), it turns a Debian/Ubuntu host reachable over SSH into an admitted node and
 * waits until it answers `mammatus.status` with every role `ok`. Six steps, one progress line each:
 * ssh, credentials, configure, install, start, wait. Serf's config is written before the packages
 * are installed, because Debian's serf package starts serf on install. Idempotent: every file is
 * compared by sha256 first, packages are left alone when installed at this version, and a service
 * is restarted only when its config changed; a second run changes nothing and says so.
 * The decisions are in node-plan.ts and node-names.ts (pure); this file carries them out over SSH.
 * A name another node holds is refused unless `--replace` (admitting it would revoke that node).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Member } from '../../core/contracts.js';
import type { RoleName } from '../../core/members.js';
import { checkNodeName, type NodeCredentials } from '../../core/trust.js';
import { errorMessage } from '../../core/errors.js';
import { parseDuration } from '../../core/duration.js';
import type { RemoteHost } from '../../core/ssh-remote.js';
import { VERSION } from '../version.js';
import { connect, UsageError, type CliIo, type GlobalOptions } from './common.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { rootToPin } from '../../src/ca/store.js';
import { admitInRoster, controllerCredentials, parseRoles, withRoster, type RosterAccess } from './node.js';
import {
  NODE_PATHS,
  checkAddrPort,
  chooseJoin,
  chooseRpcAuth,
  decideCredentials,
  joinAddresses,
  planConfig,
  planCredentials,
  planTags,
  restartsOf,
  type NodeService,
  type PlannedFile,
} from './node-plan.js';
import { checkOsRelease } from './node-host.js';
import { hostAddresses, nameTaken, serfConfigField } from './node-names.js';
import { connectHost, ensureServices, must, readRemote, sshTarget, syncFiles, type SshFlags } from './node-remote.js';
import { installPackages } from './node-install.js';
import { waitForNode, type NodeReady } from './node-wait.js';
import { StepRunner, type StepOutcome } from './node-steps.js';

/** Flags of `node add`. */
export interface NodeAddOptions extends SshFlags {
  role: string[];
  name?: string;
  aptRepo?: string;
  aptKey?: string;
  deb?: string;
  bind?: string;
  rpc?: string;
  timeout?: string;
  nats?: string;
  json?: boolean;
  /** Take the name over from the node that holds it (that node is revoked). */
  replace?: boolean;
}

/** What this controller's Serf says: its gossip key and the members. */
export interface ClusterFacts {
  readonly gossipKey: string;
  readonly members: readonly Member[];
}

/** The effects of `node add` beyond the host's SSH session (tests pass fakes). */
export interface AddDeps {
  connect(hostArg: string, o: SshFlags, env: NodeJS.ProcessEnv): Promise<RemoteHost>;
  /** Runs `body` with the roster (and the NATS connection, to read the CA's fingerprint; tests may pass none). */
  roster<T>(body: (r: RosterAccess, nc?: NatsConnection) => Promise<T>): Promise<T>;
  cluster(): Promise<ClusterFacts>;
  install(host: RemoteHost): Promise<{ installed: string[]; what: string }>;
  wait(node: string, roles: readonly RoleName[], timeoutMs: number): Promise<NodeReady>;
}

/** What the steps hand on to each other. */
interface AddState {
  host?: RemoteHost;
  node: string;
  creds?: NodeCredentials;
  restart: Set<NodeService>;
  installed: string[];
  cluster?: ClusterFacts;
  /** The roster lists the node now; `true` once the credentials step is done (its files are on the host). */
  admitted: false | 'roster' | true;
}

/** `mammatus node add [USER@]HOST --role R…` */
export async function nodeAddCommand(
  g: GlobalOptions,
  hostArg: string,
  o: NodeAddOptions,
  io: CliIo,
  env = process.env,
  deps: Partial<AddDeps> = {},
): Promise<number> {
  const roles = parseRoles(o.role);
  sshTarget(hostArg, o); // a malformed target or --port is a usage error (exit 2) before any step
  let bind: string | undefined;
  let rpcAddr: string | undefined;
  let timeoutMs: number;
  try {
    bind = checkAddrPort(o.bind, '--bind');
    rpcAddr = checkAddrPort(o.rpc, '--rpc');
    timeoutMs = o.timeout ? parseDuration(o.timeout) : 300_000;
    if (o.name !== undefined) checkNodeName(o.name);
    if (o.aptRepo && !o.aptKey) throw new Error('--apt-repo needs --apt-key FILE (the key that signs the repository)');
    if (o.aptRepo && !/^https?:\/\//.test(o.aptRepo)) throw new Error('--apt-repo must be an http:// or https:// URL');
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const own = await controllerCredentials(g, 'add nodes', io);
  if (!own) return 1;
  const d: AddDeps = {
    connect: connectHost,
    roster: (body) => withRoster(g, o.nats, own, body),
    cluster: () => clusterFacts(g),
    install: (host) => installPackages(host, { aptRepo: o.aptRepo, aptKey: o.aptKey, deb: o.deb, version: VERSION }, readLocal),
    wait: (node, r, ms) => waitForNode(g, node, r, ms),
    ...deps,
  };
  const steps = new StepRunner(6, io, Boolean(o.json));
  const st: AddState = { node: o.name ?? '', restart: new Set(), installed: [], admitted: false };
  const h = () => st.host!;
  try {
    await steps.run('ssh', async (): Promise<StepOutcome> => {
      st.host = await d.connect(hostArg, o, env);
      const os = checkOsRelease((await readRemote(h(), '/etc/os-release')) ?? '');
      if (!st.node) st.node = (await must(h(), ['hostname'])).stdout.trim();
      checkNodeName(st.node);
      const { target } = h();
      return {
        changed: false,
        unchangedText: 'connected',
        what: `${target.user}@${target.host}:${target.port} (${os}, host key ${h().hostKeyFingerprint}, ${h().auth}) is node ${st.node}`,
      };
    });

    await steps.run('credentials', async (): Promise<StepOutcome> => {
      const remote = await readRemote(h(), NODE_PATHS.credentials);
      st.cluster = await d.cluster();
      const serfConfig = await readRemote(h(), NODE_PATHS.serfConfig);
      const hostnameI = (await h().exec(['hostname', '-I'])).stdout;
      const hostAddrs = hostAddresses(hostnameI, [h().target.host, bind, serfConfigField(serfConfig, 'bind')]);
      let why = '';
      await d.roster(async (r, nc) => {
        const entry = await r.get(st.node);
        const pin = await rootToPin(own, nc);
        const taken = nameTaken({
          node: st.node,
          remoteCredentials: remote,
          authority: own.authority,
          roster: entry,
          members: st.cluster!.members,
          hostAddrs,
        });
        if (taken && !o.replace)
          throw new Error(
            `${taken}: admitting this host as ${st.node} would revoke that node. Give this host its own name with --name NAME, or take the name over with --replace`,
          );
        const decision = decideCredentials(remote, entry, own.authority, st.node, roles, pin);
        if (decision.action === 'keep') st.creds = decision.creds;
        else {
          why = taken ? `${decision.why}; --replace: the name is taken over` : decision.why;
          st.creds = await admitInRoster(r, own, st.node, roles, decision.seed, pin);
          st.admitted = 'roster';
        }
      });
      // Kept credentials keep their bytes: only the public authority file and the modes are checked.
      const files = planCredentials(st.creds!);
      if (!why) files[0] = { ...files[0], content: remote! };
      const written = await syncFiles(h(), files);
      st.admitted = true;
      for (const s of restartsOf(written)) st.restart.add(s);
      const what = `${st.node} as ${roles.join(',') || 'a node with no role'}`;
      return { changed: written.length > 0, what: why ? `${what}, minted (${why})` : `${what}, admitted` };
    });

    await steps.run('configure', async (): Promise<StepOutcome> => {
      const { gossipKey, members } = st.cluster!;
      const serfConfig = await readRemote(h(), NODE_PATHS.serfConfig);
      const rpcAuth = chooseRpcAuth(serfConfig, randomBytes(24).toString('base64url'));
      const join = joinAddresses(members, st.node);
      const files: PlannedFile[] = planConfig({
        node: st.node,
        roles,
        gossipKey,
        rpcAuth,
        join,
        existingSerfConfig: serfConfig,
        bind,
        rpcAddr,
      });
      const tags = planTags(await readRemote(h(), NODE_PATHS.serfTags), roles);
      if (tags) files.push(tags);
      const written = await syncFiles(h(), files);
      for (const s of restartsOf(written)) st.restart.add(s);
      const names = written.map((f) => f.path).join(', ');
      const joins = chooseJoin(serfConfig, join).length;
      return {
        changed: written.length > 0,
        what: `serf (joining ${joins} member${joins === 1 ? '' : 's'}) and the agent${names ? `: wrote ${names}` : ''}`,
      };
    });

    await steps.run('install', async (): Promise<StepOutcome> => {
      const r = await d.install(h());
      st.installed = r.installed;
      return { changed: r.installed.length > 0, what: r.what, unchangedText: 'already installed' };
    });

    await steps.run('start', async (): Promise<StepOutcome> => {
      const done = await ensureServices(h(), st.restart);
      return { changed: done.length > 0, what: done.length ? done.join(', ') : 'serf and the agent are running' };
    });

    await steps.run('wait', async (): Promise<StepOutcome> => {
      const r = await d.wait(st.node, roles, timeoutMs);
      const phases = Number.isNaN(r.joinedMs) ? undefined : { joined_ms: Math.round(r.joinedMs) };
      return { changed: steps.anyChanged(), what: `${st.node} answers with every role ok`, note: r.line, phases };
    });
  } catch (err) {
    steps.fail(st.admitted ? new Error(`${errorMessage(err)}. ${leftBehind(st, hostArg)}`) : err);
    return 1;
  } finally {
    await st.host?.close().catch(() => undefined);
  }
  steps.summary(st.node, steps.anyChanged() ? `added ${st.node}` : `${st.node}: nothing to change`);
  return 0;
}

/** What a failed run leaves behind, and the two ways out. */
function leftBehind(st: AddState, hostArg: string): string {
  return st.admitted === true
    ? `${st.node} is admitted and its files are on the host: run node add again, or node remove ${st.node} ${hostArg} --purge`
    : `${st.node} is admitted in the roster: run node add again, or node remove ${st.node}`;
}

/** The gossip key this controller's Serf uses and the members it sees. */
async function clusterFacts(g: GlobalOptions): Promise<ClusterFacts> {
  const client = await connect(g);
  try {
    const keys = await client.listKeys().catch((err: unknown) => {
      throw new Error(`cannot list Serf's gossip keys (is encryption on?): ${errorMessage(err)}`);
    });
    // The key every node has; with several installed, the one most nodes use.
    const ranked = Object.entries(keys.keys).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    if (ranked.length === 0) throw new Error("this controller's Serf has no gossip key: node add only joins an encrypted cluster");
    return { gossipKey: ranked[0][0], members: await client.members() };
  } finally {
    client.close();
  }
}

/** Reads a local file the install step copies or writes (`--apt-key`, `--deb`). */
async function readLocal(file: string): Promise<Buffer | undefined> {
  return existsSync(file) ? readFile(file) : undefined;
}
