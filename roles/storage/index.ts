/**
 * The storage role: block volumes over iSCSI. It follows the volume registry through an injected
 * feed and, on every change, serves the volumes recorded for this node with one backend (LIO when
 * the kernel has it, else tgt; never both), then reports per volume what it serves (`observed`).
 * Volume work runs outside the apply transaction, as the compute role's instance work does: it is
 * not a file change that can be rolled back, and a registry change renders no file differently.
 *
 * What `render` writes is only the resolved settings (backend asked for, path, portal, registry),
 * so a changed setting or a changed Serf address changes a file and the reload that follows
 * re-opens the feed and serves again. Without `roles.storage.registry.nats` it renders nothing and
 * serves nothing, and says so in `mammatus status` (the local cluster's storage node runs so).
 */
import type { FileOps, Logger, Run } from '../../core/contracts.js';
import { coalesce } from '../../core/coalesce.js';
import { detach, errorMessage } from '../../core/errors.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import type { DesiredState, RenderedFile, Role, RoleFacts, StartContext } from '../types.js';
import {
  NO_REGISTRY,
  parseStorageConfig,
  renderStorageSettings,
  STORAGE_SETTINGS_PATH,
  storageConfigured,
  storagePortal,
  thinPoolOf,
  type StorageConfig,
} from './config.js';
import { thinPoolSpaceOf } from './lvm-apply.js';
import { buildStorageCapacity, fsSpace, STORAGE_CAPACITY_QUERY, type FsSpace } from './capacity.js';
import type { VolumeFeed, VolumeFeedLink } from './feed.js';
import { chooseBackend, serveVolumes, type BackendOptions, type ServedState, type StorageBackend } from './serve.js';
import { StorageMetrics } from './metrics.js';

/** What the storage role needs from the agent. */
export interface StorageDeps extends BackendOptions {
  /** Opens the volume registry; without it the role serves nothing. */
  readonly volumeFeed?: VolumeFeed;
  /** The space of `roles.storage.path`'s filesystem; statfs by default. */
  readonly space?: FsSpace;
  /** The clock of `observed.at` (tests). */
  readonly now?: () => Date;
  /**
   * How often a pass runs between registry changes (ms; default 30 000): it re-creates a target
   * tgtd or the kernel lost (a restart) and retries a feed that could not be opened.
   */
  readonly pollMs?: number;
}

/** What the role says about its node: `summary` for `mammatus status`, the rest for the capacity query. */
export interface StorageFacts extends RoleFacts {
  readonly summary: string;
  /** The registry is followed and a pass ran. */
  readonly ready: boolean;
  readonly reason?: string;
  readonly backend?: StorageBackend;
  /** Volumes recorded for this node (not being deleted), the sum of their sizes, how many are attached. */
  readonly volumes: number;
  readonly allocated_bytes: number;
  readonly attached: number;
  /** Volumes whose last pass failed. */
  readonly failing: number;
  readonly free_bytes: number;
  readonly total_bytes: number;
  /** `roles.storage.path`, and `lvm.thin_pool` (`VG/POOL`) when set: where new volumes go. */
  readonly path?: string;
  readonly thin_pool?: string;
}

/** The role, plus a way to run a pass now (tests, the reconcile event). */
export interface StorageRole extends Role {
  facts(): StorageFacts;
  /** What each volume was last reported as. */
  observed(): ReadonlyMap<string, ServedState>;
  /** Runs a pass now (resolves when done); a no-op before the registry link is open. */
  serveNow(): Promise<void>;
}

const GiB = 1024 ** 3;
const gib = (b: number) => String(Math.round((b / GiB) * 10) / 10);

/** Builds the storage role. One per agent: it owns the registry link. */
export function buildStorageRole(deps: StorageDeps = {}): StorageRole {
  const now = deps.now ?? (() => new Date());
  const space = deps.space ?? fsSpace;
  /** What the passes run with (from the last start or reload). */
  let env: { cfg: StorageConfig; node: string; portal?: string; run: Run; files: FileOps; log: Logger } | undefined;
  let link: VolumeFeedLink | undefined;
  let linkKey = '';
  let opening: Promise<void> | undefined;
  let volumes: readonly VolumeRecord[] | undefined;
  let backend: StorageBackend | undefined;
  let notReady: string | undefined = 'not started';
  let fs = { free: 0, total: 0 };
  const observed = new Map<string, ServedState>();
  const metrics = new StorageMetrics();
  const reported = new Map<string, string>();
  let poll: NodeJS.Timeout | undefined;
  /** How long an apply waits for the volume registry before it goes on (the feed keeps connecting). */
  const OPEN_WAIT_MS = 2000;
  /** Bumped when a link closes: a late change from the old feed is ignored. */
  let generation = 0;

  async function configure(ctx: StartContext): Promise<void> {
    const cfg = parseStorageConfig(ctx.desired.config);
    const node = ctx.desired.node;
    const portal = storagePortal(cfg, node, ctx.desired.members);
    if (env?.cfg.backend !== cfg.backend) backend = undefined;
    env = { cfg, node, run: ctx.run, files: ctx.files, log: ctx.log, ...(portal ? { portal } : {}) };
    await refreshSpace();
    if (!storageConfigured(cfg)) {
      await closeLink();
      notReady = NO_REGISTRY;
      return ctx.log.warn(`storage role: ${NO_REGISTRY}; this node serves no volume`);
    }
    if (!deps.volumeFeed) {
      notReady = 'this agent follows no registry: no volume is served';
      return;
    }
    const key = JSON.stringify([[...cfg.registry.nats].sort(), node]);
    poll ??= setInterval(tick, deps.pollMs ?? 30_000);
    poll.unref();
    if (link && key === linkKey) return request();
    await closeLink();
    await openLink(key, cfg, node, ctx.log);
  }

  /** The poll: a pass, or another try at opening the feed. */
  function tick(): void {
    const e = env;
    if (!e || !storageConfigured(e.cfg) || opening) return;
    if (link) return request();
    detach(openLink(JSON.stringify([[...e.cfg.registry.nats].sort(), e.node]), e.cfg, e.node, e.log), () => undefined);
  }

  /**
   * Opens the feed in the background: NATS keeps trying while no controller accepts this node
   * (not admitted yet, behind the controller's firewall), and an apply must not wait for that.
   * The caller may wait a moment for it (`OPEN_WAIT_MS`) so a reachable registry serves at once.
   */
  function openLink(key: string, cfg: StorageConfig, node: string, log: Logger): Promise<void> {
    const feed = deps.volumeFeed!;
    const mine = generation;
    const onChange = (records: readonly VolumeRecord[]) => {
      if (mine !== generation) return;
      volumes = records;
      request();
    };
    notReady = 'connecting to the volume registry';
    const p: Promise<void> = feed(cfg.registry.nats, node, onChange, log.child({ component: 'volume-registry' })).then(
      (l) => {
        // Closed (or re-keyed) while it connected: this link is nobody's.
        if (mine !== generation) return void detach(l.close(), () => undefined);
        link = l;
        linkKey = key;
        if (volumes === undefined) notReady = 'waiting for the volume registry';
        request();
      },
      (err: unknown) => {
        if (mine !== generation) return;
        notReady = `cannot open the volume registry: ${errorMessage(err)}`;
        log.error({ err }, 'storage role: cannot open the volume registry');
      },
    );
    opening = p;
    detach(
      p.then(() => void (opening === p && (opening = undefined))),
      () => undefined,
    );
    return Promise.race([p, new Promise<void>((r) => setTimeout(r, OPEN_WAIT_MS).unref())]);
  }

  async function closeLink(): Promise<void> {
    generation++;
    opening = undefined;
    const l = link;
    link = undefined;
    linkKey = '';
    volumes = undefined;
    reported.clear();
    await l?.close().catch(() => undefined);
  }

  /** Asks for a pass; passes never overlap, and changes during one make one more. */
  function request(): void {
    detach(serveNow(), () => undefined);
  }

  const serveNow = coalesce(pass);

  async function refreshSpace(): Promise<void> {
    if (!env) return;
    const pool = thinPoolOf(env.cfg);
    fs = await (pool ? thinPoolSpaceOf(env.run, pool) : space(env.cfg.path)).catch(() => fs);
  }

  async function pass(): Promise<void> {
    const e = env;
    const l = link;
    if (!e || !l || volumes === undefined) return;
    if (!e.portal) {
      notReady = 'no portal: set roles.storage.portal (this node has no IPv4 Serf address)';
      return;
    }
    const mine = volumes.filter((v) => v.node === e.node);
    try {
      backend ??= await chooseBackend(e.cfg.backend, e.run);
      const served = await serveVolumes({ ...e, config: e.cfg, portal: e.portal, backend, volumes: mine, options: deps });
      notReady = served.problem ?? '';
      observed.clear();
      for (const [name, s] of served.volumes) observed.set(name, s);
    } catch (err) {
      // Unexpected (the backends report their own failures): keep the last observed state, say why.
      notReady = `the last pass failed: ${errorMessage(err)}`;
      e.log.error({ err }, 'storage role: pass failed');
      return;
    }
    await refreshSpace();
    for (const [name, served] of observed) {
      // A served volume says where: compute nodes log in to the portal the record names.
      const s = served.state === 'serving' ? { ...served, portal: e.portal } : served;
      const key = JSON.stringify(s);
      if (reported.get(name) === key) continue;
      try {
        await l.report(name, { ...s, at: now().toISOString() });
        reported.set(name, key);
      } catch (err) {
        e.log.warn({ err, volume: name }, 'storage role: cannot report what is served (retried on the next pass)');
      }
    }
    for (const name of [...reported.keys()]) if (!observed.has(name)) reported.delete(name);
  }

  const role: StorageRole = {
    name: 'storage',
    // The portal defaults to this node's Serf address.
    watches: ['member-update'],

    render(desired: DesiredState): RenderedFile[] {
      const cfg = parseStorageConfig(desired.config);
      if (!storageConfigured(cfg)) return [];
      return [{ path: STORAGE_SETTINGS_PATH, content: renderStorageSettings(cfg, desired.node, desired.members), mode: 0o644 }];
    },

    async reload(ctx) {
      await configure(ctx);
    },

    async start(ctx) {
      metrics.start(role);
      await configure(ctx);
    },

    queries: {
      [STORAGE_CAPACITY_QUERY]: (_payload, last) => buildStorageCapacity(last?.node ?? env?.node ?? '', role.facts()),
    },

    facts(): StorageFacts {
      const mine = (volumes ?? []).filter((v) => v.node === env?.node && v.state !== 'deleting');
      const allocated = mine.reduce((n, v) => n + v.size_bytes, 0);
      const attached = mine.filter((v) => v.attached).length;
      const failing = [...observed.values()].filter((s) => s.state === 'error').length;
      const reason = notReady || undefined;
      const parts = [`${mine.length} volumes, ${gib(allocated)} of ${gib(fs.total)} GiB, ${attached} attached`];
      if (failing) parts.push(`${failing} failing`);
      if (reason) parts.push(`not ready: ${reason}`);
      // `mammatus status` shows 80 characters: without a registry, that is all there is to say.
      const summary =
        reason === NO_REGISTRY ? `serves nothing: ${NO_REGISTRY}` : parts.join(', ') + (backend && !reason ? ` (${backend})` : '');
      return {
        summary,
        ready: !reason,
        ...(reason ? { reason } : {}),
        ...(backend ? { backend } : {}),
        volumes: mine.length,
        allocated_bytes: allocated,
        attached,
        failing,
        free_bytes: fs.free,
        total_bytes: fs.total,
        ...(env ? { path: env.cfg.path } : {}),
        ...(env?.cfg.lvm.thin_pool ? { thin_pool: env.cfg.lvm.thin_pool } : {}),
      };
    },
    observed: () => observed,
    serveNow,

    async stop() {
      metrics.stop();
      clearInterval(poll);
      poll = undefined;
      await serveNow.settled();
      await closeLink();
      env = undefined;
      notReady = 'not started';
      observed.clear();
    },
  };
  return role;
}

export { STORAGE_CAPACITY_QUERY, type FsSpace, type StorageCapacityAnswer } from './capacity.js';
export {
  parseStorageConfig,
  renderStorageSettings,
  STORAGE_SETTINGS_PATH,
  storageConfigured,
  storagePortal,
  type StorageConfig,
} from './config.js';
export type { VolumeFeed, VolumeFeedLink, VolumeObserved } from './feed.js';
export type { ServedState, StorageBackend } from './serve.js';
