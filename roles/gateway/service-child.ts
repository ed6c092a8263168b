/**
 * A service the gateway role runs as a supervised child of the agent (`mammatus service run NAME`,
 * as the service user): the metadata proxy and the boot HTTP server. Both follow one rendered
 * file: none stops the child, a change restarts it, and each launch sends the child its settings
 * as its first message (built by the service's own `init`).
 */
import { ChildService, serviceArgv, type ChildInit } from '../../core/child-service.js';
import type { Argv, Logger, Spawn } from '../../core/contracts.js';
import { DEFAULT_SERVICE_USER } from '../../core/users.js';
import { forwardNatsRoot } from '../../core/nats.js';

/** What running a child takes from the role's deps. */
export interface GatewayChildDeps {
  readonly spawn: Spawn;
  /** How to run `mammatus` itself; without it the config is written but no child runs. */
  readonly mammatus?: Argv;
  readonly serviceUser?: () => string;
  readonly logLevel?: () => string;
}

/** Which service, and how its first message is made from its rendered file. */
export interface GatewayChildSpec {
  /** The service name (`mammatus service run <service>`, the log component). */
  readonly service: string;
  /** Logged when the file exists but this agent cannot run `mammatus` (what is then missing). */
  readonly withoutMammatus: string;
  /** The child's first message, from the rendered file's text; called at every launch. */
  init(text: string, level: string | undefined): () => ChildInit;
}

/** One such child of a gateway role. */
export class GatewayServiceChild {
  private child: ChildService | undefined;

  constructor(
    private readonly deps: GatewayChildDeps,
    private readonly spec: GatewayChildSpec,
  ) {}

  /** True while the child runs. */
  get running(): boolean {
    return this.child?.running ?? false;
  }

  /** Its last output lines, for status and errors. */
  lastLines(n: number): string {
    return this.child?.lastLines(n) ?? 'no output';
  }

  /**
   * Starts, restarts or stops the child to match its file (`text`, undefined = none). Rejects when
   * a (re)started child does not come up; it is retried with backoff meanwhile.
   */
  async apply(text: string | undefined, ctx: { readonly log: Logger }, restart: boolean): Promise<void> {
    if (text === undefined) return void (await this.child?.stop());
    const mammatus = this.deps.mammatus;
    if (!mammatus) return ctx.log.warn(this.spec.withoutMammatus);
    if (!restart && this.child?.running) return;
    await this.childFor(ctx.log, mammatus).start(this.spec.init(text, this.deps.logLevel?.()), { keepTrying: true });
  }

  async stop(): Promise<void> {
    await this.child?.stop();
  }

  private childFor(log: Logger, mammatus: Argv): ChildService {
    const name = this.spec.service;
    // The cluster root, whenever it may have changed (the metadata proxy verifies its upstreams with it).
    if (!this.child) forwardNatsRoot((m) => void this.child?.send(m));
    return (this.child ??= new ChildService({
      spawn: this.deps.spawn,
      log: log.child({ component: name }),
      name,
      argv: serviceArgv(mammatus, name),
      user: this.deps.serviceUser?.() ?? DEFAULT_SERVICE_USER,
      readyTimeoutMs: 10_000,
    }));
  }
}
