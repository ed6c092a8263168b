/**
 * The monitoring stack's part in the controller role's hooks (index.ts calls these), kept here so
 * the role's module stays about NATS. A stack that will not start never fails the role's apply:
 * like the CA backend it is the status's to report and its poll's to retry, so it never rolls NATS
 * back; a file its tools refuse does fail validation, and the framework rolls that apply back.
 */
import type { ApplyContext, StartContext } from '../../types.js';
import type { MonitoringConfig } from './config.js';
import { monitoringPaths } from './paths.js';
import { MonitoringStack, type MonitoringDeps, type MonitoringState } from './stack.js';

type Effects = Pick<ApplyContext, 'run' | 'files' | 'log'>;

/** The hooks' monitoring part of one role instance (it owns one stack). */
export class MonitoringPart {
  private stack: MonitoringStack | undefined;

  constructor(private readonly deps: Pick<MonitoringDeps, 'spawn'> & Partial<Omit<MonitoringDeps, 'run' | 'files' | 'log'>>) {}

  /** The stack's status line and state, for the role's facts; undefined while off. */
  get facts(): { summary: string; state: MonitoringState } | undefined {
    const summary = this.stack?.summary;
    return summary ? { summary, state: this.stack!.state } : undefined;
  }

  private of(ctx: Effects): MonitoringStack {
    return (this.stack ??= new MonitoringStack({
      ...this.deps,
      run: ctx.run,
      files: ctx.files,
      log: ctx.log.child({ component: 'monitoring' }),
    }));
  }

  private touched(ctx: Pick<ApplyContext, 'changed'>, mon: MonitoringConfig): boolean {
    return Object.values(monitoringPaths(mon)).some((p) => ctx.changed.includes(p));
  }

  /** The role's validate: promtool, amtool, influxd config on the changed files. */
  async validate(ctx: ApplyContext, mon: MonitoringConfig): Promise<void> {
    if (this.touched(ctx, mon)) await this.of(ctx).validate(mon, ctx.changed);
  }

  /**
   * The role's reload: starts, reloads or stops the daemons for the changed files (a membership
   * change rewrites members.json only, which Prometheus follows by itself). `follow`: the role runs
   * (its poll may retry).
   */
  async reload(ctx: ApplyContext, mon: MonitoringConfig, follow: boolean): Promise<void> {
    if (!this.touched(ctx, mon) && !(this.stack && !mon.store)) return;
    // Membership alone: Prometheus re-reads members.json by itself. Nothing to start, signal or
    // wait for, so a member joining never waits on the daemons' health (a WAL replay takes long).
    const paths = monitoringPaths(mon);
    const ours = Object.values(paths).filter((p) => ctx.changed.includes(p));
    if (mon.store && ours.length === 1 && ours[0] === paths.members && this.stack?.state.state === 'ok') return;
    const stack = this.of(ctx);
    await stack
      .apply(mon, ctx.changed)
      .catch((err: Error) => ctx.log.error({ err: err.message }, 'monitoring stack not healthy; retried by its poll'));
    if (mon.store && follow) stack.follow(mon);
  }

  /** The role's start: after an agent restart the files are unchanged, so no reload started the daemons. */
  start(ctx: StartContext, mon: MonitoringConfig): void {
    if (!mon.store) return;
    const stack = this.of(ctx);
    if (stack.state.state === 'off')
      void stack.apply(mon).catch((err: Error) => ctx.log.error({ err: err.message }, 'monitoring stack not healthy; retried by its poll'));
    stack.follow(mon);
  }

  /** Stops the daemons for good. */
  async stop(): Promise<void> {
    await this.stack?.stop();
  }
}
