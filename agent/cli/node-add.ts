/**
 * `mammatus node add [USER@]HOST --role R…`: run on a controller (it holds the cluster authority and
 * Serf's gossip key), it turns a Debian/Ubuntu host reachable over SSH into an admitted node and
 * waits until it answers `mammatus.status` with every role `ok`. Six steps, one progress line each:
 * ssh, credentials, configure, install, start, wait. Serf's config is written before the packages
 * are installed, because Debian's serf package starts serf on install. Idempotent: every file is
 * compared by sha256 first, packages are left alone when installed at this version, and a service
 * is restarted only when its config changed; a second run changes nothing and says so.
 * The decisions are in node-plan.ts (pure); this file carries them out over SSH.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ROLE_TAG, AGENT_TAG } from '../../core/members.js';
import { checkNodeName, type NodeCredentials } from '../../core/trust.js';
import { errorMessage } from '../../core/errors.js';
import { parseDuration } from '../../core/duration.js';
import type { RemoteHost } from '../../core/ssh-remote.js';
import { VERSION } from '../version.js';
import { connect, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { admitInRoster, controllerCredentials, parseRoles, withRoster } from './node.js';
import {
  NODE_PATHS,
  checkAddrPort,
  chooseRpcAuth,
  decideCredentials,
  planConfig,
  planCredentials,
  planTags,
  restartsOf,
  type NodeService,
  type PlannedFile,
} from './node-plan.js';
import { checkOsRelease } from './node-host.js';
import { connectHost, ensureServices, must, readRemote, syncFiles, type SshFlags } from './node-remote.js';
import { installPackages } from './node-install.js';
import { waitForNode } from './node-wait.js';
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
}

/** What the steps hand on to each other. */
interface AddState {
  host?: RemoteHost;
  node: string;
  creds?: NodeCredentials;
  restart: Set<NodeService>;
  installed: string[];
}

/** `mammatus node add [USER@]HOST --role R…` */
export async function nodeAddCommand(g: GlobalOptions, hostArg: string, o: NodeAddOptions, io: CliIo, env = process.env): Promise<number> {
  const roles = parseRoles(o.role);
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
  const steps = new StepRunner(6, io, Boolean(o.json));
  const st: AddState = { node: o.name ?? '', restart: new Set(), installed: [] };
  const h = () => st.host!;
  try {
    await steps.run('ssh', async (): Promise<StepOutcome> => {
      st.host = await connectHost(hostArg, o, env);
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
      let why = '';
      await withRoster(g, o.nats, own, async (r) => {
        const decision = decideCredentials(remote, await r.get(st.node), own.authority, st.node, roles);
        if (decision.action === 'keep') st.creds = decision.creds;
        else {
          why = decision.why;
          st.creds = await admitInRoster(r, own, st.node, roles, decision.seed);
        }
      });
      // Kept credentials keep their bytes: only the public authority file and the modes are checked.
      const files = planCredentials(st.creds!);
      if (!why) files[0] = { ...files[0], content: remote! };
      const written = await syncFiles(h(), files);
      for (const s of restartsOf(written)) st.restart.add(s);
      const what = `${st.node} as ${roles.join(',') || 'a node with no role'}`;
      return { changed: written.length > 0, what: why ? `${what}, minted (${why})` : `${what}, admitted` };
    });

    await steps.run('configure', async (): Promise<StepOutcome> => {
      const { gossipKey, join } = await clusterFacts(g, st.node);
      const rpcAuth = chooseRpcAuth(await readRemote(h(), NODE_PATHS.serfConfig), randomBytes(24).toString('base64url'));
      const files: PlannedFile[] = planConfig({ node: st.node, roles, gossipKey, rpcAuth, join, bind, rpcAddr });
      const tags = planTags(await readRemote(h(), NODE_PATHS.serfTags), roles);
      if (tags) files.push(tags);
      const written = await syncFiles(h(), files);
      for (const s of restartsOf(written)) st.restart.add(s);
      const names = written.map((f) => f.path).join(', ');
      return {
        changed: written.length > 0,
        what: `serf (joining ${join.length} member${join.length === 1 ? '' : 's'}) and the agent${names ? `: wrote ${names}` : ''}`,
      };
    });

    await steps.run('install', async (): Promise<StepOutcome> => {
      const r = await installPackages(h(), { aptRepo: o.aptRepo, aptKey: o.aptKey, deb: o.deb, version: VERSION }, readLocal);
      st.installed = r.installed;
      return { changed: r.installed.length > 0, what: r.what, unchangedText: 'already installed' };
    });

    await steps.run('start', async (): Promise<StepOutcome> => {
      const done = await ensureServices(h(), st.restart);
      return { changed: done.length > 0, what: done.length ? done.join(', ') : 'serf and the agent are running' };
    });

    await steps.run('wait', async (): Promise<StepOutcome> => {
      const r = await waitForNode(g, st.node, roles, timeoutMs);
      const phases = Number.isNaN(r.joinedMs) ? undefined : { joined_ms: Math.round(r.joinedMs) };
      return { changed: steps.anyChanged(), what: `${st.node} answers with every role ok`, note: r.line, phases };
    });
  } catch (err) {
    steps.fail(err);
    return 1;
  } finally {
    await st.host?.close().catch(() => undefined);
  }
  steps.summary(st.node, steps.anyChanged() ? `added ${st.node}` : `${st.node}: nothing to change`);
  return 0;
}

/** The gossip key this controller's Serf uses and the Serf addresses of the other alive members. */
async function clusterFacts(g: GlobalOptions, node: string): Promise<{ gossipKey: string; join: string[] }> {
  const client = await connect(g);
  try {
    const keys = await client.listKeys().catch((err: unknown) => {
      throw new Error(`cannot list Serf's gossip keys (is encryption on?): ${errorMessage(err)}`);
    });
    // The key every node has; with several installed, the one most nodes use.
    const ranked = Object.entries(keys.keys).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    if (ranked.length === 0) throw new Error("this controller's Serf has no gossip key: node add only joins an encrypted cluster");
    const members = await client.members();
    const join = members
      .filter((m) => m.status === 'alive' && m.name !== node && (m.tags[AGENT_TAG] !== undefined || m.tags[ROLE_TAG] !== undefined))
      .map((m) => `${m.addr}:${m.port}`);
    return { gossipKey: ranked[0][0], join };
  } finally {
    client.close();
  }
}

/** Reads a local file the install step copies or writes (`--apt-key`, `--deb`). */
async function readLocal(file: string): Promise<Buffer | undefined> {
  return existsSync(file) ? readFile(file) : undefined;
}
