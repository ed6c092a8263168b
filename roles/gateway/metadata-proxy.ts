/**
 * The gateway's metadata proxy as a supervised child (`mammatus service run metadata-proxy`), run as
 * the service user. That user cannot read the 0600 secret file, so the agent reads it at each
 * launch and sends it, with the rest of the proxy's rendered config, as the child's first message.
 */
import { parse as parseYaml } from 'yaml';
import { ChildService, serviceArgv, type ChildInit } from '../../core/child-service.js';
import type { Argv, Logger, Spawn } from '../../core/contracts.js';
import { readSecretFileSync } from '../../core/files.js';
import { DEFAULT_SERVICE_USER } from '../../core/users.js';

/** What running the proxy takes from the role's deps. */
export interface ProxyChildDeps {
  readonly spawn: Spawn;
  /** How to run `mammatus` itself; without it the proxy's config is written but no proxy runs. */
  readonly mammatus?: Argv;
  readonly serviceUser?: () => string;
  readonly logLevel?: () => string;
}

/** The one proxy child of a gateway role. */
export class MetadataProxyChild {
  private child: ChildService | undefined;

  constructor(private readonly deps: ProxyChildDeps) {}

  /** True while the child runs. */
  get running(): boolean {
    return this.child?.running ?? false;
  }

  /** Its last output lines, for status and errors. */
  lastLines(n: number): string {
    return this.child?.lastLines(n) ?? 'no output';
  }

  /**
   * Starts, restarts or stops the proxy to match its config file (`text`, undefined = none).
   * Rejects when a (re)started proxy does not come up; it is retried with backoff meanwhile.
   */
  async apply(text: string | undefined, ctx: { readonly log: Logger }, restart: boolean): Promise<void> {
    if (text === undefined) return void (await this.child?.stop());
    const mammatus = this.deps.mammatus;
    if (!mammatus) return ctx.log.warn('the metadata proxy is configured but this agent cannot run mammatus; instances get no metadata');
    if (!restart && this.child?.running) return;
    await this.childFor(ctx.log, mammatus).start(proxyInit(text, this.deps.logLevel?.()), { keepTrying: true });
  }

  async stop(): Promise<void> {
    await this.child?.stop();
  }

  private childFor(log: Logger, mammatus: Argv): ChildService {
    return (this.child ??= new ChildService({
      spawn: this.deps.spawn,
      log: log.child({ component: 'metadata-proxy' }),
      name: 'metadata-proxy',
      argv: serviceArgv(mammatus, 'metadata-proxy'),
      user: this.deps.serviceUser?.() ?? DEFAULT_SERVICE_USER,
      readyTimeoutMs: 10_000,
    }));
  }
}

/**
 * The proxy's first message, built from its rendered config (render-metadata.ts) at every launch:
 * the `metadata:` section with the secret file's content in place of its path (read as root, with
 * the same mode check as everywhere: a secret others can read is refused).
 */
export function proxyInit(confText: string, level?: string): () => ChildInit {
  const doc = (parseYaml(confText) ?? {}) as { log?: { level?: string }; metadata?: Record<string, unknown> };
  const { proxy_secret_file: file, ...section } = doc.metadata ?? {};
  return () => ({
    type: 'init',
    service: 'metadata-proxy',
    level: level ?? doc.log?.level ?? 'info',
    section: { ...section, ...(typeof file === 'string' ? { proxy_secret: readSecretFileSync(file).trim() } : {}) },
  });
}
