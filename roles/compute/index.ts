/**
 * The compute role: LXD containers for the cloud's instances. Applying it renders the preseed
 * (pure, golden-tested) and, when that changed or the role starts, brings LXD to it through the
 * REST client (pool, `default` root disk, macvlan profile; the host's macvlan sibling through the
 * runner). While it runs it follows the instance registry and reconciles the instances recorded
 * for this node (`reconciler.ts`): created with their MAC fixed, started or stopped as recorded,
 * destroyed when marked `deleting`, their real addresses written back; containers the registry
 * does not know are reported, never destroyed.
 *
 * Instance work happens outside the apply transaction on purpose: it is not a file change that can
 * be rolled back, and it must also run when nothing was rendered differently (a registry change, an
 * address that appeared). A poll covers what LXD does on its own (an instance that stopped, an
 * address that arrived by DHCP).
 */
import path from 'node:path';
import type { Logger, Member } from '../../core/contracts.js';
import { actsAs } from '../../core/members.js';
import { detach } from '../../core/errors.js';
import type { StartContext, RenderedFile, Role, RoleFacts } from '../types.js';
import { parseComputeConfig, type ComputeConfig } from './config.js';
import { LxdClient, type LxdClientOptions } from '../../src/lxd/client.js';
import { ensureHostMacvlan, ensureLxdSetup } from './setup.js';
import { renderPreseedYaml } from './preseed.js';
import { Reconciler, type ComputeReport } from './reconciler.js';
import { buildCapacity, CAPACITY_QUERY, hostFacts } from './capacity.js';
import type { ComputeRegistry, ComputeRegistryFactory, FileOps, Run } from '../../core/contracts.js';
import { ComputeVolumes, type AttachedVolumeFeed } from './volumes.js';
import { readInitiatorName } from './iscsi-apply.js';
import type { VolumePassReport } from './volume-attach.js';
import { ComputeMetrics } from './metrics.js';

/** What the compute role needs from the agent. */
export interface ComputeDeps {
  /** Opens the registry link (NATS); without it the role sets LXD up but manages no instances. */
  readonly instanceFeed?: ComputeRegistryFactory;
  /** How often LXD is polled between registry changes (ms); default 10 000. */
  readonly pollMs?: number;
  /** LXD client options besides the socket (timeouts; tests). */
  readonly lxd?: Omit<LxdClientOptions, 'socketPath'>;
  /** Opens the volumes attached to this node's instances; without it no volume is attached here. */
  readonly volumeFeed?: AttachedVolumeFeed;
  /** Whether a block device exists (default: the file system; tests). */
  readonly deviceExists?: (path: string) => Promise<boolean>;
  /** How long a pass waits for a logged-in volume's device (ms; default 10 000). */
  readonly deviceWaitMs?: number;
  /** Where the initiator name is read (default `/etc/iscsi/initiatorname.iscsi`; tests). */
  readonly initiatorNameFile?: string;
}

/**
 * What the role says about its node (`facts()`): whether it can take instances now and how many
 * it has. `mammatus.capacity` answers from it; `summary` is its line in `mammatus status`.
 */
export interface ComputeFacts extends RoleFacts {
  readonly summary: string;
  /** LXD set up and the registry followed: a launch recorded for this node will be carried out. */
  readonly ready: boolean;
  /** Why not ready. */
  readonly reason?: string;
  /** Containers in LXD (managed or not) and how many run, as of the last reconcile pass. */
  readonly instances: number;
  readonly running: number;
  readonly unmanaged: number;
  /** Instances whose last action failed. */
  readonly failing: number;
  /** This node's iSCSI initiator (published as the Serf tag `iscsi`, which `volume attach` reads). */
  readonly tags: Readonly<Record<string, string>>;
}

/** The role, plus what its last reconcile pass found (unknown containers, failures). */
export interface ComputeRole extends Role {
  report(): ComputeReport | undefined;
  /** What the last volume pass did (undefined before one ran). */
  volumeReport(): VolumePassReport | undefined;
  facts(): ComputeFacts;
  /** Runs a reconcile pass now (resolves when done); a no-op before the registry link is open. */
  reconcileNow(): Promise<void>;
}

/** How long a running instance without an address is looked at every second before the normal poll takes over. */
const ADDRESS_WATCH_MS = 120_000;

/** The registry's NATS servers: configured ones, else every alive controller at `registry.port`. */
export function computeRegistryServers(cfg: ComputeConfig, members: readonly Member[]): string[] {
  if (cfg.registry.nats.length) return [...cfg.registry.nats];
  return members
    .filter((m) => m.status === 'alive' && actsAs(m, 'controller'))
    .map((m) => `nats://${m.addr.includes(':') ? `[${m.addr}]` : m.addr}:${cfg.registry.port}`)
    .sort();
}

const MANAGED = '# managed by mammatus role=compute: the NATS servers of the instance registry\n';

/** Where the role writes the registry servers it follows: next to the preseed. */
export function registryServersPath(cfg: ComputeConfig): string {
  return path.join(path.dirname(cfg.paths.preseed), 'registry-servers');
}

/**
 * True when `roles.compute` names a macvlan parent. Without one the role manages nothing (renders
 * no file, touches no LXD): a node can carry the tag before LXD is set up on it, as the local
 * cluster's compute node does.
 */
export function computeConfigured(raw: unknown): boolean {
  return (
    typeof raw === 'object' &&
    raw !== null &&
    !Array.isArray(raw) &&
    (raw as Record<string, unknown>).parent !== undefined &&
    (raw as Record<string, unknown>).parent !== null
  );
}

/** Builds the compute role. One per agent: it owns the LXD connection and the registry link. */
export function buildComputeRole(deps: ComputeDeps = {}): ComputeRole {
  let cfg: ComputeConfig | undefined;
  let node = '';
  let lxd: LxdClient | undefined;
  let link: ComputeRegistry | undefined;
  let reconciler: Reconciler | undefined;
  let poll: NodeJS.Timeout | undefined;
  /** Undefined until the role started or was applied; then why the node cannot take instances, or ''. */
  let notReady: string | undefined;
  let volumes: ComputeVolumes | undefined;
  let effects: { run: Run; files: FileOps; members: readonly Member[] } | undefined;
  /** The initiator IQN of this node, once read. */
  let initiator: string | undefined;
  const metrics = new ComputeMetrics();
  const client = (c: ComputeConfig) => {
    if (lxd && cfg?.lxd.socket !== c.lxd.socket) lxd.close();
    if (!lxd || cfg?.lxd.socket !== c.lxd.socket) lxd = new LxdClient({ ...deps.lxd, socketPath: c.lxd.socket });
    cfg = c;
    return lxd;
  };
  async function setUp(ctx: StartContext): Promise<void> {
    const c = parseComputeConfig(ctx.desired.config);
    node = ctx.desired.node;
    effects = { run: ctx.run, files: ctx.files, members: ctx.desired.members };
    const name = await readInitiatorName(ctx.files, deps.initiatorNameFile);
    initiator = 'iqn' in name ? name.iqn : undefined;
    notReady = 'LXD is not set up';
    await ensureLxdSetup(client(c), c, ctx.log);
    await ensureHostMacvlan(ctx.run, c);
    notReady = '';
  }
  /** Opens the registry link once its servers are known (the first controller may join later). */
  function ensureLink(members: readonly Member[], log: Logger): void {
    if (!cfg || !lxd) return;
    const servers = computeRegistryServers(cfg, members);
    if (!servers.length) return;
    ensureVolumes(servers, log);
    if (link || !deps.instanceFeed) return;
    const l = deps.instanceFeed(servers, pass, log.child({ component: 'registry' }));
    link = l;
    const current = () => cfg!;
    reconciler = new Reconciler({ lxd, registry: l, config: current, node: () => node, log, observed: (rows) => metrics.passed(rows) });
    poll = setInterval(pass, deps.pollMs ?? 10_000);
    poll.unref();
  }

  /** Starts the volume work once (its feed opens in the background). */
  function ensureVolumes(servers: readonly string[], log: Logger): void {
    if (!deps.volumeFeed || !lxd || !effects) return;
    volumes ??= new ComputeVolumes({
      feed: deps.volumeFeed,
      lxd: () => lxd,
      run: effects.run,
      files: effects.files,
      node,
      members: () => effects?.members ?? [],
      log,
      ...(deps.deviceExists ? { deviceExists: deps.deviceExists } : {}),
      ...(deps.deviceWaitMs !== undefined ? { deviceWaitMs: deps.deviceWaitMs } : {}),
    });
    volumes.follow(servers);
  }

  /**
   * Runs a pass; while an instance that runs has no address yet (its DHCP lease is seconds away),
   * looks again every second instead of at the next poll, for at most two minutes — the address is
   * what `instance launch --wait` and the gateway's DNS wait for.
   */
  let soon: NodeJS.Timeout | undefined;
  let awaitingSince: number | undefined;
  /** Asks for a pass without waiting for it (the reconciler logs a pass that fails; nothing rejects). */
  const pass = () => detach(requestPass(), () => undefined);
  async function requestPass(): Promise<void> {
    const r = reconciler;
    if (!r) return volumes?.request();
    await r.request();
    // After the instances: one just created can take its volume now.
    volumes?.request();
    if (r !== reconciler || r.report().awaitingAddress === 0) {
      awaitingSince = undefined;
      return;
    }
    awaitingSince ??= Date.now();
    if (soon || Date.now() - awaitingSince > ADDRESS_WATCH_MS) return;
    soon = setTimeout(() => {
      soon = undefined;
      pass();
    }, 1000);
    soon.unref();
  }

  const role: ComputeRole = {
    name: 'compute',
    // A controller joining is how the registry's servers become known.
    watches: ['member-join', 'member-update'],

    render(desired): RenderedFile[] {
      if (!computeConfigured(desired.config)) return [];
      const c = parseComputeConfig(desired.config);
      // The registry's servers are rendered too, so a controller joining changes a file and the
      // reload that follows opens the registry link (an apply with no change runs no hook).
      const servers = computeRegistryServers(c, desired.members);
      return [
        { path: c.paths.preseed, content: renderPreseedYaml(c), mode: 0o644 },
        { path: registryServersPath(c), content: `${MANAGED}${servers.map((s) => `${s}\n`).join('')}`, mode: 0o644 },
      ].sort((a, b) => a.path.localeCompare(b.path));
    },

    async reload(ctx) {
      if (!computeConfigured(ctx.desired.config)) return; // the files of an unconfigured role are gone
      if ((await ctx.files.read(parseComputeConfig(ctx.desired.config).paths.preseed)) === undefined) return;
      await setUp(ctx);
      ensureLink(ctx.desired.members, ctx.log);
      pass();
    },

    async start(ctx) {
      metrics.start();
      if (!computeConfigured(ctx.desired.config)) {
        notReady = 'roles.compute.parent is not set';
        return ctx.log.warn('roles.compute.parent is not set: this node manages no instances');
      }
      // After an agent restart nothing was rendered differently, so no reload ran: set up here.
      await setUp(ctx);
      ensureLink(ctx.desired.members, ctx.log);
      pass();
    },

    report: () => reconciler?.report(),
    volumeReport: () => volumes?.report(),
    queries: {
      [CAPACITY_QUERY]: (_payload, last) => buildCapacity(last?.node ?? '', role.facts(), hostFacts()),
    },
    facts(): ComputeFacts {
      const r = reconciler?.report();
      const counts = {
        instances: r?.instances ?? 0,
        running: r?.running ?? 0,
        unmanaged: r?.unmanaged.length ?? 0,
        failing: r?.failing ?? 0,
      };
      const reason =
        notReady === undefined
          ? 'not started'
          : notReady || (reconciler ? undefined : 'no controller known: the instance registry is not followed');
      const parts = [`${counts.instances} instances (${counts.running} running)`];
      if (counts.unmanaged) parts.push(`${counts.unmanaged} unmanaged`);
      if (counts.failing) parts.push(`${counts.failing} failing`);
      const vol = volumes?.summary();
      if (vol) parts.push(vol);
      if (reason) parts.push(`not ready: ${reason}`);
      const tags: Record<string, string> = initiator ? { iscsi: initiator } : {};
      return { summary: parts.join(', '), ready: !reason, ...(reason ? { reason } : {}), ...counts, tags };
    },
    reconcileNow: () => requestPass(),

    async stop() {
      metrics.stop();
      clearInterval(poll);
      poll = undefined;
      clearTimeout(soon);
      soon = undefined;
      const l = link;
      link = undefined;
      reconciler = undefined;
      notReady = undefined;
      const v = volumes;
      volumes = undefined;
      effects = undefined;
      await Promise.all([l?.stop(), v?.close()]);
      lxd?.close();
      lxd = undefined;
    },
  };
  return role;
}

export type { ComputeReport } from './reconciler.js';
