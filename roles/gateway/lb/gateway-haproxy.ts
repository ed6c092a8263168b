/**
 * The gateway role's HAProxy hooks: what validate, reload, health, start and stop do when the
 * apply touched HAProxy's files (render-lb.ts renders them), and the status line.
 *
 * Reload picks the cheapest safe way: runtime API changes (plan-runtime.ts) when the plan says they
 * suffice, HAProxy runs, the files before this apply were the live ones, and the files on disk are
 * what `ctx.desired` renders; a master reload otherwise. The last condition is the rollback: when an
 * apply fails after reload, roles/apply.ts puts the old files back and calls reload again with
 * `ctx.desired` still the failed set, so the disk no longer matches it, and the old files are
 * reloaded whole rather than planned from a state that is not the one being restored.
 */
import type { Spawn } from '../../../core/contracts.js';
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import { errorMessage } from '../../../core/errors.js';
import type { ApplyContext, StartContext } from '../../types.js';
import type { GatewayConfig } from '../config.js';
import { haproxySettings, masterSocket } from './config.js';
import { HaproxyRuntime } from './haproxy-runtime.js';
import { HaproxySupervisor } from './haproxy-supervisor.js';
import { planRuntimeChanges } from './plan-runtime.js';
import { balancersCachePath } from './render-lb.js';
import { configPath, renderHaproxy } from './render-haproxy.js';

/** How often the status line may ask HAProxy (a status query more often gets the last answer). */
const STATUS_EVERY_MS = 2000;

/** What HAProxy runs: its balancers and the files they rendered to. */
interface Live {
  readonly balancers: readonly ResolvedBalancer[];
  readonly files: ReadonlyMap<string, string>;
}

/** HAProxy as the gateway role runs it (one per role). */
export class GatewayHaproxy {
  private sup: HaproxySupervisor | undefined;
  private supKey = '';
  private live: Live | undefined;
  private status: { at: number; targets?: { up: number; total: number }; error?: string; pending?: boolean } = { at: 0 };
  private statusRuntime: HaproxyRuntime | undefined;

  constructor(private readonly spawn: Spawn) {}

  /** Whether this apply changed (wrote or removed) one of HAProxy's files. */
  touched(ctx: Pick<ApplyContext, 'changed'>, cfg: GatewayConfig): boolean {
    return ctx.changed.some((p) => this.ours(p, cfg));
  }

  /** One of HAProxy's files (the balancers' copy beside them is the role's, not HAProxy's). */
  private ours(p: string, cfg: GatewayConfig): boolean {
    return p.startsWith(`${cfg.lb.dir}/`) && p !== balancersCachePath(cfg.lb);
  }

  /** `haproxy -c` on the written files. */
  async validate(ctx: ApplyContext, cfg: GatewayConfig): Promise<void> {
    if (!this.touched(ctx, cfg) || !(await this.configExists(ctx, cfg))) return;
    await (await this.supervisor(ctx, cfg)).validate();
  }

  /** Makes the files live (see the header); no config file left = HAProxy stopped. */
  async reload(ctx: ApplyContext, cfg: GatewayConfig): Promise<void> {
    if (!this.touched(ctx, cfg)) return;
    if (!(await this.configExists(ctx, cfg))) {
      this.live = undefined;
      await this.sup?.stop();
      return;
    }
    const sup = await this.supervisor(ctx, cfg);
    const balancers = ctx.desired.balancers ?? [];
    const want = new Map(renderHaproxy(balancers, haproxySettings(cfg.lb)).map((f) => [f.path, f.content]));
    const onDisk = await this.matchesDisk(ctx, cfg, want);
    if (sup.process.running && onDisk && this.live && (await this.priorWasLive(ctx, cfg, this.live))) {
      const plan = planRuntimeChanges(this.live.balancers, balancers);
      if (!plan.reload.length) {
        const errors = await sup.applyChanges(plan.changes);
        if (!errors.length) {
          this.live = { balancers, files: want };
          this.status.at = 0;
          return;
        }
        ctx.log.warn({ errors }, 'haproxy runtime changes failed; reloading');
      } else ctx.log.info({ why: plan.reload }, 'haproxy reload');
    }
    // Unknown until the reload succeeds; a failed one leaves the old worker, which we cannot name.
    this.live = undefined;
    await sup.reload();
    this.live = onDisk ? { balancers, files: want } : undefined;
    this.status.at = 0;
  }

  /** HAProxy answers, and its current worker is the master's. */
  async health(ctx: ApplyContext, cfg: GatewayConfig): Promise<void> {
    if (!this.touched(ctx, cfg) || !(await this.configExists(ctx, cfg))) return;
    await (await this.supervisor(ctx, cfg)).health();
  }

  /** After an agent restart the files are unchanged and no reload ran: start HAProxy here. */
  async start(ctx: StartContext, cfg: GatewayConfig): Promise<void> {
    if (!(await this.configExists(ctx, cfg))) return;
    // Not fatal: the supervisor keeps restarting it; the next apply reloads whole (live unknown).
    const sup = await this.supervisor(ctx, cfg);
    await sup.ensureRunning().catch((err: unknown) => ctx.log.error({ err: errorMessage(err) }, 'haproxy did not start'));
  }

  /**
   * A reload for new certificates in the certificate directory (acme.ts): the files HAProxy
   * renders are unchanged, so `live` stays. Nothing when HAProxy does not run: it reads them at start.
   */
  async reloadCertificates(): Promise<void> {
    if (!this.sup?.process.running) return;
    await this.sup.reload();
    this.status.at = 0;
  }

  async stop(): Promise<void> {
    this.live = undefined;
    await this.sup?.stop();
  }

  /**
   * `N balancers, U/T targets up` for the status line, from `show servers state` (at most one
   * question per STATUS_EVERY_MS, 1 s each; the answer of the last one). Undefined without balancers.
   */
  summary(balancers: readonly ResolvedBalancer[] | undefined): string | undefined {
    if (!balancers?.length) return undefined;
    const n = `${balancers.length} balancer${balancers.length === 1 ? '' : 's'}`;
    this.refreshStatus();
    const s = this.status;
    if (s.targets) return `${n}, ${s.targets.up}/${s.targets.total} targets up`;
    return `${n}, ${s.error ? `haproxy: ${s.error.slice(0, 80)}` : 'haproxy state not read yet'}`;
  }

  private refreshStatus(): void {
    const runtime = this.statusRuntime;
    if (!runtime || this.status.pending || Date.now() - this.status.at < STATUS_EVERY_MS) return;
    this.status = { ...this.status, pending: true };
    void runtime.serversState().then(
      (servers) => {
        const up = servers.filter((x) => x.up).length;
        this.status = { at: Date.now(), targets: { up, total: servers.length } };
      },
      (err: unknown) => (this.status = { at: Date.now(), error: this.sup?.process.running ? errorMessage(err) : 'not running' }),
    );
  }

  private async supervisor(ctx: Pick<ApplyContext, 'run' | 'files' | 'log'>, cfg: GatewayConfig): Promise<HaproxySupervisor> {
    const settings = haproxySettings(cfg.lb);
    const key = JSON.stringify([cfg.lb.binary, settings, masterSocket(cfg.lb)]);
    if (this.sup && key === this.supKey) return this.sup;
    // Settings moved (another dir or binary): the old master goes (and frees its ports) first.
    await this.sup?.stop();
    this.supKey = key;
    this.live = undefined;
    this.statusRuntime = new HaproxyRuntime(settings.adminSocket, { timeoutMs: 1000, maxBytes: 1 << 20 });
    this.sup = new HaproxySupervisor({
      spawn: this.spawn,
      run: ctx.run,
      files: ctx.files,
      log: ctx.log.child({ component: 'haproxy' }),
      settings,
      binary: cfg.lb.binary,
      masterSocket: masterSocket(cfg.lb),
    });
    return this.sup;
  }

  private async configExists(ctx: Pick<ApplyContext, 'files'>, cfg: GatewayConfig): Promise<boolean> {
    return (await ctx.files.read(configPath(haproxySettings(cfg.lb)))) !== undefined;
  }

  /** The files on disk are exactly what the desired balancers render (not so during a rollback). */
  private async matchesDisk(ctx: ApplyContext, cfg: GatewayConfig, want: ReadonlyMap<string, string>): Promise<boolean> {
    for (const [p, content] of want) if ((await ctx.files.read(p)) !== content) return false;
    // A changed file of ours that the desired set does not render must be gone.
    for (const p of ctx.changed) {
      if (this.ours(p, cfg) && !want.has(p) && (await ctx.files.read(p)) !== undefined) return false;
    }
    return true;
  }

  /** Every HAProxy file before this apply held what the live worker was started or changed with. */
  private async priorWasLive(ctx: ApplyContext, cfg: GatewayConfig, live: Live): Promise<boolean> {
    const paths = new Set([...live.files.keys(), ...ctx.changed.filter((p) => this.ours(p, cfg))]);
    for (const p of paths) {
      const before = ctx.changed.includes(p) ? ctx.prior(p) : await ctx.files.read(p);
      if (before !== live.files.get(p)) return false;
    }
    return true;
  }
}
