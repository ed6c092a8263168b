/**
 * The gateway's boot HTTP server as a supervised child (`mammatus service run boot-http`), run as
 * the service user like the metadata proxy: it serves only public, read-only files, so it needs
 * no secret and no privilege. Its settings come from the rendered `paths.boot_server` file,
 * sent as the child's first message; a change of that file restarts it.
 */
import { parse as parseYaml } from 'yaml';
import { ChildService, serviceArgv, type ChildInit } from '../../core/child-service.js';
import type { Argv, Logger, Spawn } from '../../core/contracts.js';
import { DEFAULT_SERVICE_USER } from '../../core/users.js';
import type { BootServerSection } from './render-boot.js';

/** The child's service name (`mammatus service run boot-http`). */
export const BOOT_SERVICE = 'boot-http';

/** What running the server takes from the role's deps. */
export interface BootChildDeps {
  readonly spawn: Spawn;
  /** How to run `mammatus` itself; without it the config is written but no server runs. */
  readonly mammatus?: Argv;
  readonly serviceUser?: () => string;
  readonly logLevel?: () => string;
}

/** The one boot server child of a gateway role. */
export class BootServerChild {
  private child: ChildService | undefined;

  constructor(private readonly deps: BootChildDeps) {}

  /** True while the child runs. */
  get running(): boolean {
    return this.child?.running ?? false;
  }

  /** Its last output lines, for status and errors. */
  lastLines(n: number): string {
    return this.child?.lastLines(n) ?? 'no output';
  }

  /**
   * Starts, restarts or stops the server to match its config file (`text`, undefined = none).
   * Rejects when a (re)started server does not come up (the LAN address missing, the port taken);
   * it is retried with backoff meanwhile.
   */
  async apply(text: string | undefined, ctx: { readonly log: Logger }, restart: boolean): Promise<void> {
    if (text === undefined) return void (await this.child?.stop());
    const mammatus = this.deps.mammatus;
    if (!mammatus) return ctx.log.warn('the boot server is configured but this agent cannot run mammatus; PXE clients get no boot files');
    if (!restart && this.child?.running) return;
    const section = parseBootSection((parseYaml(text) as { boot?: unknown } | null)?.boot);
    const level = this.deps.logLevel?.() ?? 'info';
    const init = (): ChildInit => ({ type: 'init', service: BOOT_SERVICE, level, section: { ...section } });
    await this.childFor(ctx.log, mammatus).start(init, { keepTrying: true });
  }

  async stop(): Promise<void> {
    await this.child?.stop();
  }

  private childFor(log: Logger, mammatus: Argv): ChildService {
    return (this.child ??= new ChildService({
      spawn: this.deps.spawn,
      log: log.child({ component: BOOT_SERVICE }),
      name: BOOT_SERVICE,
      argv: serviceArgv(mammatus, BOOT_SERVICE),
      user: this.deps.serviceUser?.() ?? DEFAULT_SERVICE_USER,
      readyTimeoutMs: 10_000,
    }));
  }
}

const isAbsolute = (v: unknown): v is string => typeof v === 'string' && v.startsWith('/') && !v.split('/').includes('..');

/** A map of URL paths to absolute file paths; `prefix` = the keys must end in `/`. */
function pathMap(v: unknown, what: string, prefix: boolean): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`boot server: ${what} must be a mapping`);
  const out: Record<string, string> = {};
  for (const [url, file] of Object.entries(v)) {
    if (!url.startsWith('/') || prefix !== url.endsWith('/') || !isAbsolute(file))
      throw new Error(`boot server: ${what} ${JSON.stringify(url)} → ${JSON.stringify(file)} is not a URL path and an absolute path`);
    out[url] = file;
  }
  return out;
}

/** Checks the section the child gets (it trusts nothing it did not check); throws a clear error. */
export function parseBootSection(v: unknown): BootServerSection {
  const s = (v ?? {}) as Record<string, unknown>;
  if (typeof s.host !== 'string' || !s.host) throw new Error('boot server: host must be an address');
  if (typeof s.port !== 'number' || !Number.isInteger(s.port) || s.port < 1 || s.port > 65535)
    throw new Error('boot server: port must be an integer from 1 to 65535');
  return { host: s.host, port: s.port, files: pathMap(s.files, 'files', false), dirs: pathMap(s.dirs, 'dirs', true) };
}
