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
 *
 * Other settings (another dir, run dir or binary) take effect in reload only: validate checks the
 * new files with a supervisor for the new settings that runs nothing yet, so a refused config
 * leaves the old HAProxy serving; reload stops the old master (freeing its ports) and starts the
 * new one. When that fails, the rollback removes the new files and restores the old ones; reload
 * then starts the old settings' HAProxy again.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { Spawn } from '../../../core/contracts.js';
import { findOnPath } from '../../../core/exec.js';
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import { errorMessage } from '../../../core/errors.js';
import type { ApplyContext, StartContext } from '../../types.js';
import type { GatewayConfig } from '../config.js';
import { haproxySettings, masterSocket } from './config.js';
import { HaproxyRuntime } from './haproxy-runtime.js';
import { HaproxySupervisor } from './haproxy-supervisor.js';
import { backendName, serverName } from './names.js';
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

/** A supervisor and the settings it was made for. */
interface Sup {
  readonly key: string;
  readonly sup: HaproxySupervisor;
  /** Its `haproxy.cfg`. */
  readonly configFile: string;
  /** Its admin socket with the status line's bounds. */
  readonly status: HaproxyRuntime;
  /** The role's file reader (certificate reloads compare the disk with what is live). */
  readonly files: ApplyContext['files'];
}

/** What `show servers state` said last: server `backend/server` → up. */
interface Status {
  readonly at: number;
  readonly servers?: ReadonlyMap<string, boolean>;
  readonly error?: string;
  readonly pending?: boolean;
}

/** Why every balancer is left out on a gateway without HAProxy. */
export const HAPROXY_MISSING = 'haproxy is not installed on this gateway (apt-get install haproxy)';

/** Whether `binary` (roles.gateway.lb.binary: a name on PATH, or an absolute path) can be run. */
export function haproxyInstalled(binary: string): boolean {
  if (!path.isAbsolute(binary)) return findOnPath(binary, ['/usr/sbin', '/sbin']) !== undefined;
  try {
    accessSync(binary, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** HAProxy as the gateway role runs it (one per role). */
export class GatewayHaproxy {
  /** The supervisor of the HAProxy that runs (or ran last). */
  private current: Sup | undefined;
  /** One for settings validate saw but reload did not make current yet. */
  private next: Sup | undefined;
  /** The one the last settings switch stopped, for the rollback of that switch. */
  private previous: Sup | undefined;
  private live: Live | undefined;
  private status: Status = { at: 0 };

  constructor(private readonly spawn: Spawn) {}

  /** Whether this apply changed (wrote or removed) one of HAProxy's files. */
  touched(ctx: Pick<ApplyContext, 'changed'>, cfg: GatewayConfig): boolean {
    return ctx.changed.some((p) => this.ours(p, cfg));
  }

  /** One of HAProxy's files (the balancers' copy beside them is the role's, not HAProxy's). */
  private ours(p: string, cfg: GatewayConfig): boolean {
    return p.startsWith(`${cfg.lb.dir}/`) && p !== balancersCachePath(cfg.lb);
  }

  /** `haproxy -c` on the written files (with the binary of the new settings; nothing stopped). */
  async validate(ctx: ApplyContext, cfg: GatewayConfig): Promise<void> {
    if (!this.touched(ctx, cfg) || !(await this.configExists(ctx, cfg))) return;
    await this.supervisor(ctx, cfg).sup.validate();
  }

  /** Makes the files live (see the header); no config file left = HAProxy stopped. */
  async reload(ctx: ApplyContext, cfg: GatewayConfig): Promise<void> {
    if (!this.touched(ctx, cfg)) return;
    try {
      await this.reloadFiles(ctx, cfg);
    } finally {
      // Whatever happened, the next status line asks again rather than repeat the old answer.
      this.status = { ...this.status, at: 0 };
    }
  }

  private async reloadFiles(ctx: ApplyContext, cfg: GatewayConfig): Promise<void> {
    const sup = await this.adopt(ctx, cfg);
    if (!(await this.configExists(ctx, cfg))) {
      this.live = undefined;
      await sup.stop();
      await this.switchBack(ctx);
      return;
    }
    const balancers = ctx.desired.balancers ?? [];
    const want = new Map(renderHaproxy(balancers, haproxySettings(cfg.lb)).map((f) => [f.path, f.content]));
    const onDisk = await this.matchesDisk(ctx, cfg, want);
    if (sup.process.running && onDisk && this.live && (await this.priorWasLive(ctx, cfg, this.live))) {
      const plan = planRuntimeChanges(this.live.balancers, balancers);
      if (!plan.reload.length) {
        // Unknown while the changes go in: one may land before another fails.
        this.live = undefined;
        const errors = await sup.applyChanges(plan.changes);
        if (!errors.length) {
          this.live = { balancers, files: want };
          return;
        }
        ctx.log.warn({ errors }, 'haproxy runtime changes failed; reloading');
      } else ctx.log.info({ why: plan.reload }, 'haproxy reload');
    }
    // Unknown until the reload succeeds (a failed one leaves the old worker, which we cannot
    // name), and set only after it: a throw leaves it unknown, so the next apply reloads whole.
    this.live = undefined;
    await sup.reload();
    if (onDisk) this.live = { balancers, files: want };
  }

  /**
   * The rollback of a failed settings switch: the new settings' files are gone and this apply put
   * the old settings' config back, so their HAProxy (stopped by the switch) starts again.
   */
  private async switchBack(ctx: ApplyContext): Promise<void> {
    const prev = this.previous;
    this.previous = undefined;
    if (!prev || !ctx.changed.includes(prev.configFile) || (await ctx.files.read(prev.configFile)) === undefined) return;
    ctx.log.warn({ config: prev.configFile }, 'haproxy: back to the settings before the failed switch');
    this.current = prev;
    this.status = { at: 0 };
    await prev.sup.ensureRunning();
  }

  /** HAProxy answers, and its current worker is the master's (new settings not reloaded: not running). */
  async health(ctx: ApplyContext, cfg: GatewayConfig): Promise<void> {
    if (!this.touched(ctx, cfg) || !(await this.configExists(ctx, cfg))) return;
    await this.supervisor(ctx, cfg).sup.health();
  }

  /** After an agent restart the files are unchanged and no reload ran: start HAProxy here. */
  async start(ctx: StartContext, cfg: GatewayConfig): Promise<void> {
    if (!(await this.configExists(ctx, cfg))) return;
    // Not fatal: the supervisor keeps restarting it; the next apply reloads whole (live unknown).
    const sup = await this.adopt(ctx, cfg);
    await sup.ensureRunning().catch((err: unknown) => ctx.log.error({ err: errorMessage(err) }, 'haproxy did not start'));
  }

  /**
   * A reload for new certificates in the certificate directory (acme.ts): the files HAProxy
   * renders are unchanged, so `live` stays. Nothing when HAProxy does not run: it reads them at start.
   */
  async reloadCertificates(): Promise<void> {
    const cur = this.current;
    if (!cur?.sup.process.running) return;
    // An apply between writing HAProxy's files and making them live (or rolling them back) must
    // not have them loaded unvalidated: then this waits for the next check, and that apply's own
    // reload reads the certificates anyway. (Unknown live files, after a restart: reloaded.)
    const live = this.live;
    if (live) for (const [p, content] of live.files) if ((await cur.files.read(p)) !== content) throw new Error('an apply is under way');
    await cur.sup.reload();
    this.status = { ...this.status, at: 0 };
  }

  async stop(): Promise<void> {
    this.live = undefined;
    this.next = undefined;
    this.previous = undefined;
    await this.current?.sup.stop();
  }

  /**
   * `N balancers, U/T targets up` for the status line: T the balancers' servers, U those
   * `show servers state` says are up (a server left in maintenance by a removal is not counted).
   * At most one question in flight and one per STATUS_EVERY_MS, 1 s each; the line shows the last
   * answer. Undefined without balancers.
   */
  summary(balancers: readonly ResolvedBalancer[] | undefined): string | undefined {
    if (!balancers?.length) return undefined;
    const n = `${balancers.length} balancer${balancers.length === 1 ? '' : 's'}`;
    this.refreshStatus();
    const { servers, error } = this.status;
    if (error) return `${n}, haproxy: ${error.slice(0, 80)}`;
    if (!servers) return `${n}, haproxy state not read yet`;
    let [up, total] = [0, 0];
    for (const b of balancers)
      for (const srv of b.servers) {
        total++;
        if (servers.get(`${backendName(b.record)}/${serverName(srv)}`)) up++;
      }
    return `${n}, ${up}/${total} targets up`;
  }

  private refreshStatus(): void {
    const cur = this.current;
    if (this.status.pending || Date.now() - this.status.at < STATUS_EVERY_MS) return;
    if (!cur?.sup.process.running) {
      this.status = { at: Date.now(), error: 'not running' };
      return;
    }
    this.status = { ...this.status, pending: true };
    void cur.status.serversState().then(
      (list) => (this.status = { at: Date.now(), servers: new Map(list.map((x) => [`${x.backend}/${x.server}`, x.up])) }),
      (err: unknown) => (this.status = { at: Date.now(), error: cur.sup.process.running ? errorMessage(err) : 'not running' }),
    );
  }

  /**
   * The supervisor for `cfg`'s settings: the current one when they are its, else one for them
   * that runs nothing until `adopt` makes it current (validate and health use it as it is).
   */
  private supervisor(ctx: Pick<ApplyContext, 'run' | 'files' | 'log'>, cfg: GatewayConfig): Sup {
    const settings = haproxySettings(cfg.lb);
    const key = JSON.stringify([cfg.lb.binary, settings, masterSocket(cfg.lb)]);
    if (this.current?.key === key) return this.current;
    if (this.next?.key === key) return this.next;
    const sup = new HaproxySupervisor({
      spawn: this.spawn,
      run: ctx.run,
      files: ctx.files,
      log: ctx.log.child({ component: 'haproxy' }),
      settings,
      binary: cfg.lb.binary,
      masterSocket: masterSocket(cfg.lb),
    });
    this.next = {
      key,
      sup,
      configFile: configPath(settings),
      status: new HaproxyRuntime(settings.adminSocket, { timeoutMs: 1000, maxBytes: 1 << 20 }),
      files: ctx.files,
    };
    return this.next;
  }

  /** Makes `cfg`'s supervisor current; settings moved: the old master goes (and frees its ports) first. */
  private async adopt(ctx: Pick<ApplyContext, 'run' | 'files' | 'log'>, cfg: GatewayConfig): Promise<HaproxySupervisor> {
    const want = this.supervisor(ctx, cfg);
    if (want === this.current) return want.sup;
    const old = this.current;
    this.live = undefined;
    this.status = { at: 0 };
    this.current = want;
    this.next = undefined;
    this.previous = old;
    await old?.sup.stop();
    return want.sup;
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
