/**
 * Services a controller hosts in-process next to nats-server (the metadata service, the SQS/SNS
 * API). The controller role starts them once JetStream is ready, tells them when membership
 * changes, and stops them before nats-server. A service that fails is logged and reported as a role
 * error; it never takes the agent down, and the role tries to start it again at its next reconcile.
 */
import type { Logger, Member } from '../../core/contracts.js';
import type { HostedService, HostedServiceContext } from '../../core/contracts.js';

type State =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'starting'; readonly done: Promise<boolean>; readonly natsUrl: string }
  | { readonly kind: 'running'; readonly natsUrl: string; readonly configKey?: string };

/** Starts, informs and stops a fixed list of hosted services; never two starts of one at a time. */
export class HostedServices {
  private readonly states = new Map<string, State>();
  private readonly lastError = new Map<string, string>();
  /** Services whose stop was asked for while their start was still running. */
  private readonly abandoned = new Set<string>();
  /** The context of the last start (members kept current), for restarts after a config change. */
  private lastCtx?: Omit<HostedServiceContext, 'log'>;

  constructor(
    private readonly services: readonly HostedService[],
    private readonly log: Logger,
    private readonly timeoutMs = 30_000,
  ) {
    const names = services.map((s) => s.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw new Error(`two hosted services are named ${JSON.stringify(dup)}`);
    for (const s of services) this.states.set(s.name, { kind: 'stopped' });
  }

  /** How many services there are. */
  get size(): number {
    return this.services.length;
  }

  /** The names of the running services, in start order. */
  running(): string[] {
    return this.services.filter((s) => this.states.get(s.name)!.kind === 'running').map((s) => s.name);
  }

  /**
   * Starts every service that is not running, in order, each with `ctx` (and its own logger).
   * Resolves when all run; otherwise rejects with one error naming each failed service.
   */
  async start(ctx: Omit<HostedServiceContext, 'log'>): Promise<void> {
    this.lastCtx = ctx;
    const failures: string[] = [];
    for (const service of this.services) {
      // Membership may change while an earlier service starts: each starts with the latest.
      const error = await this.startOne(service, this.lastCtx ?? ctx);
      if (error !== undefined) failures.push(`${service.name}: ${error}`);
    }
    if (failures.length > 0) throw new Error(`hosted service failed to start: ${failures.join('; ')}`);
  }

  /** Stops the services started with a NATS URL other than `natsUrl` (the client port moved); returns their names. */
  async stopIfUrlChanged(natsUrl: string): Promise<string[]> {
    const moved: string[] = [];
    for (const service of [...this.services].reverse()) {
      const state = this.states.get(service.name)!;
      if (state.kind === 'stopped' || state.natsUrl === natsUrl) continue;
      await this.stopOne(service);
      moved.push(service.name);
    }
    return moved;
  }

  /**
   * After a config reload: restarts each running service whose `configKey` changed since its start.
   * Returns their names; rejects (like `start`) when one does not come back.
   */
  async restartChanged(): Promise<string[]> {
    const changed = this.services.filter((s) => {
      const state = this.states.get(s.name)!;
      return state.kind === 'running' && s.configKey !== undefined && s.configKey() !== state.configKey;
    });
    const ctx = this.lastCtx;
    if (changed.length === 0 || !ctx) return [];
    for (const service of [...changed].reverse()) await this.stopOne(service);
    const failures: string[] = [];
    for (const service of changed) {
      this.log.info({ service: service.name }, 'hosted service restarting: its config changed');
      const error = await this.startOne(service, ctx);
      if (error !== undefined) failures.push(`${service.name}: ${error}`);
    }
    if (failures.length > 0) throw new Error(`hosted service failed to restart: ${failures.join('; ')}`);
    return changed.map((s) => s.name);
  }

  /** Tells every running service about `members`; a service that throws is logged, not fatal. */
  membersChanged(members: readonly Member[]): void {
    if (this.lastCtx) this.lastCtx = { ...this.lastCtx, members };
    for (const service of this.services) {
      if (this.states.get(service.name)!.kind !== 'running' || !service.membersChanged) continue;
      try {
        service.membersChanged(members);
      } catch (err) {
        this.log.error({ err, service: service.name }, 'hosted service failed on a membership change');
      }
    }
  }

  /** Stops every service in reverse start order; never throws. */
  async stop(): Promise<void> {
    for (const service of [...this.services].reverse()) await this.stopOne(service);
  }

  /** Starts one service unless it runs; resolves with why it failed, or undefined. */
  private async startOne(service: HostedService, ctx: Omit<HostedServiceContext, 'log'>): Promise<string | undefined> {
    const state = this.states.get(service.name)!;
    if (state.kind === 'running') return undefined;
    this.abandoned.delete(service.name);
    // A start that timed out earlier may still finish: wait for it rather than start twice.
    const done = state.kind === 'starting' ? state.done : this.launch(service, ctx);
    const ok = await withTimeout(done, this.timeoutMs).catch(() => undefined);
    if (ok === true) return undefined;
    if (ok === undefined) return `did not start within ${Math.round(this.timeoutMs / 1000)}s`;
    return this.lastError.get(service.name) ?? 'failed';
  }

  /** Calls `service.start` and tracks its outcome; resolves true once it runs. */
  private launch(service: HostedService, ctx: Omit<HostedServiceContext, 'log'>): Promise<boolean> {
    const log = this.log.child({ service: service.name });
    const done = (async () => {
      // Read before the start: a reload during it is then seen as a change.
      const configKey = service.configKey?.();
      try {
        await service.start({ ...ctx, log });
      } catch (err) {
        this.states.set(service.name, { kind: 'stopped' });
        this.lastError.set(service.name, err instanceof Error ? err.message : String(err));
        log.error({ err }, 'hosted service failed to start');
        return false;
      }
      this.states.set(service.name, { kind: 'running', natsUrl: ctx.natsUrl, configKey });
      log.info({ nats: ctx.natsUrl }, 'hosted service started');
      // A change while it started was not told to it (only running services are): tell it now.
      const latest = this.lastCtx?.members;
      if (latest && latest !== ctx.members && service.membersChanged) {
        try {
          service.membersChanged(latest);
        } catch (err) {
          log.error({ err }, 'hosted service failed on a membership change');
        }
      }
      // Stopped while it was starting (role removed, agent stopping): it must not keep running.
      if (this.abandoned.delete(service.name)) await this.stopOne(service);
      return true;
    })();
    this.states.set(service.name, { kind: 'starting', done, natsUrl: ctx.natsUrl });
    return done;
  }

  private async stopOne(service: HostedService): Promise<void> {
    const state = this.states.get(service.name)!;
    if (state.kind === 'starting') {
      this.abandoned.add(service.name);
      await withTimeout(state.done, this.timeoutMs).catch(() => undefined);
      return;
    }
    if (state.kind !== 'running') return;
    this.states.set(service.name, { kind: 'stopped' });
    try {
      await withTimeout(service.stop(), this.timeoutMs);
      this.log.info({ service: service.name }, 'hosted service stopped');
    } catch (err) {
      this.log.error({ err, service: service.name }, 'hosted service failed to stop');
    }
  }
}

/** `promise`, or a rejection after `ms` (the promise itself runs on; it cannot be cancelled). */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${Math.round(ms / 1000)}s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
