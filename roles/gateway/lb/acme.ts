/**
 * The gateway's certificate owner for `tls acme` balancers: for each of their host names it gets a
 * certificate from the configured ACME directory with Debian's lego (`lego run`, later
 * `lego renew`), puts it in HAProxy's certificate directory (`<certDir>/<host>.pem`, chain + key,
 * 0600, written to a temp file and renamed) and has HAProxy reload, which is hitless (the new
 * worker takes the listening sockets over). Certificates of hosts no balancer names any more are
 * removed the same way.
 *
 * lego answers http-01 on a loopback port (`roles.gateway.lb.acme.http_port`); HAProxy routes
 * `/.well-known/acme-challenge/` there (render-acme.ts). One lego at a time: they share the port.
 *
 * Checks run when the set of names changes, at start, every `check_interval` and when a
 * certificate is due (plan-acme.ts). A failure is logged with the host and lego's reason and
 * retried with backoff (30 s doubling, at most `check_interval`); it never throws out of here,
 * and HAProxy keeps serving what it has, the placeholder until the first certificate arrives.
 */
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import type { FileOps, Logger, Run } from '../../../core/contracts.js';
import { errorMessage } from '../../../core/errors.js';
import { CommandFailedError } from '../../../core/exec.js';
import { isHostName } from '../../../core/lb-syntax.js';
import type { StartContext } from '../../types.js';
import type { GatewayConfig } from '../config.js';
import { haproxySettings, type GatewayLbAcmeConfig } from './config.js';
import { balancersCachePath, parseBalancersCache } from './render-lb.js';
import { acmeHosts, planAcme, renewalAt, retryDelay, type IssuedCert } from './plan-acme.js';

/** How soon a certificate reload that could not run (an apply under way) is tried again. */
const RELOAD_RETRY_MS = 10_000;

/** What the owner needs. */
export interface AcmeDeps {
  readonly run: Run;
  readonly files: FileOps;
  readonly log: Logger;
  /** Makes HAProxy load the certificate directory again (a hitless reload; nothing when it is not running). */
  readonly reload: () => Promise<void>;
  readonly now?: () => number;
  /** How long one lego run may take (default 120 s). */
  readonly legoTimeoutMs?: number;
}

/** The lego argv (after `lego`) for `host`: `run` for a first certificate, `renew` for a due one. */
export function legoArgs(acme: GatewayLbAcmeConfig, host: string, op: 'run' | 'renew'): string[] {
  const args = ['--server', acme.directory, '--accept-tos', '--email', acme.email];
  args.push('--path', acme.state_dir, '--http', '--http.port', `127.0.0.1:${acme.http_port}`, '-d', host, op);
  // The planner decided it is due; lego's --days counts whole days (see plan-acme.ts), so any
  // certificate counts as due here. No random sleep: the timing is ours.
  if (op === 'renew') args.push('--days', '36500', '--no-random-sleep');
  return args;
}

/** lego's environment: the root it trusts for the directory (none: the system's). */
export const legoEnv = (acme: GatewayLbAcmeConfig): Record<string, string> => (acme.ca_file ? { LEGO_CA_CERTIFICATES: acme.ca_file } : {});

/** lego's files for `host` under its `--path`. */
export function legoFiles(acme: GatewayLbAcmeConfig, host: string): { readonly crt: string; readonly key: string } {
  const dir = path.join(acme.state_dir, 'certificates');
  return { crt: path.join(dir, `${host}.crt`), key: path.join(dir, `${host}.key`) };
}

/** What HAProxy's directory holds for `host`: lego's chain, then its key. */
const pemOf = (crt: string, key: string): string => `${crt.trimEnd()}\n${key.trimEnd()}\n`;

/** Keeps `<certDir>/<host>.pem` for every `tls acme` host (see the header). */
export class AcmeCertificates {
  private acme: GatewayLbAcmeConfig | undefined;
  private certDir = '';
  private hosts: readonly string[] = [];
  private readonly failures = new Map<string, { count: number; retryAt: number }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private reloadPending = false;
  private stopped = false;

  constructor(private readonly deps: AcmeDeps) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** The names to keep certificates for (sorted), where, and from which directory; checks now when any changed. */
  update(acme: GatewayLbAcmeConfig, certDir: string, hosts: readonly string[]): void {
    const key = JSON.stringify([acme, certDir, hosts]);
    if (key === JSON.stringify([this.acme, this.certDir, this.hosts])) return;
    this.acme = acme;
    this.certDir = certDir;
    this.hosts = hosts;
    this.stopped = false;
    this.schedule(0);
  }

  /** One check now (the running one, then one more when one runs). Never rejects. */
  check(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.cycle()
      .catch((err: unknown) => this.deps.log.error({ err: errorMessage(err) }, 'acme: certificate check failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.schedule(0);
        }
      });
    return this.running;
  }

  /** No more checks (a lego run under way ends on its own). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    // check() logs its own failures and never rejects; the catch only satisfies the linter.
    this.timer = setTimeout(
      () => {
        this.check().catch(() => undefined);
      },
      Math.max(0, ms),
    );
    this.timer.unref();
  }

  private async cycle(): Promise<void> {
    const acme = this.acme;
    if (!acme) return;
    const { run, files, log } = this.deps;
    const hosts = this.hosts;
    // lego's account key and certificates' keys: root only.
    if (hosts.length) await run('install', ['-d', '-m', '0700', acme.state_dir]);
    const served = await this.served();
    const issued = new Map<string, IssuedCert>();
    const pems = new Map<string, string>();
    for (const host of hosts) {
      const got = await this.issued(acme, host);
      if (!got) continue;
      issued.set(host, got.cert);
      pems.set(host, got.pem);
      if (served.has(host)) served.set(host, (await files.read(this.pemPath(host))) === got.pem);
    }
    const retryAt = new Map([...this.failures].map(([h, f]) => [h, f.retryAt]));
    const plan = planAcme({ wanted: hosts, issued, served, retryAt, now: this.now() });
    const install = [...plan.install];
    for (const host of [...plan.obtain, ...plan.renew]) {
      if (this.stopped) return;
      const op = plan.obtain.includes(host) ? 'run' : 'renew';
      try {
        await run('lego', legoArgs(acme, host, op), { env: legoEnv(acme), timeoutMs: this.deps.legoTimeoutMs ?? 120_000 });
        const got = await this.issued(acme, host);
        if (!got?.cert.coversHost) throw new Error(`lego ${op} succeeded but left no certificate for ${host}`);
        this.failures.delete(host);
        issued.set(host, got.cert);
        pems.set(host, got.pem);
        install.push(host);
        log.info({ host, op, not_after: new Date(got.cert.notAfter).toISOString() }, 'acme: certificate issued');
      } catch (err) {
        const count = (this.failures.get(host)?.count ?? 0) + 1;
        const delay = retryDelay(count, acme.check_interval * 1000);
        this.failures.set(host, { count, retryAt: this.now() + delay });
        log.warn({ host, op, reason: legoReason(err), retry_in_s: Math.round(delay / 1000) }, 'acme: no certificate; retrying');
      }
    }
    for (const host of install) await files.write(this.pemPath(host), pems.get(host)!, 0o600);
    for (const host of plan.remove) await files.remove(this.pemPath(host));
    for (const host of this.failures.keys()) if (!hosts.includes(host)) this.failures.delete(host);
    // A reload that failed is tried again at the next check: the files are already in place.
    if (install.length || plan.remove.length || this.reloadPending) {
      this.reloadPending = true;
      await this.deps.reload().then(
        () => {
          this.reloadPending = false;
          log.info({ installed: install, removed: plan.remove }, 'acme: certificates changed; haproxy reloaded');
        },
        (err: unknown) => log.error({ err: errorMessage(err) }, 'acme: certificates changed but haproxy did not reload'),
      );
    }
    // Next: the interval, a due renewal or a retry, whichever comes first.
    // Renewals already due wait for their retry time, not for the due time past.
    const due = [...issued.values()].map(renewalAt).filter((t) => t > this.now());
    const retries = [...this.failures.values()].map((f) => f.retryAt);
    // A reload still owed (an apply was under way) is tried again soon, not at the next interval.
    const reload = this.reloadPending ? [this.now() + RELOAD_RETRY_MS] : [];
    const next = Math.min(this.now() + acme.check_interval * 1000, ...due, ...retries, ...reload);
    this.schedule(Math.max(1000, next - this.now()));
  }

  private pemPath(host: string): string {
    return path.join(this.certDir, `${host}.pem`);
  }

  /** Hosts with a file in HAProxy's directory (the value is filled in by the caller). */
  private async served(): Promise<Map<string, boolean>> {
    const out = new Map<string, boolean>();
    const list = await this.deps
      .run('find', [this.certDir, '-maxdepth', '1', '-type', 'f', '-name', '*.pem', '-printf', '%f\\n'])
      .catch(() => ({ stdout: '' }));
    for (const name of list.stdout.split('\n')) {
      const host = name.slice(0, -'.pem'.length);
      // Only files we could have written: a host name (a dot-temp file of the writer is not one).
      if (name.endsWith('.pem') && isHostName(host)) out.set(host, false);
    }
    return out;
  }

  /** lego's certificate for `host` and the PEM HAProxy gets from it; undefined when it has none (or none readable). */
  private async issued(acme: GatewayLbAcmeConfig, host: string): Promise<{ cert: IssuedCert; pem: string } | undefined> {
    const f = legoFiles(acme, host);
    const [crt, key] = await Promise.all([this.deps.files.read(f.crt), this.deps.files.read(f.key)]);
    if (!crt || !key) return undefined;
    try {
      const x = new X509Certificate(crt);
      const cert = { notBefore: Date.parse(x.validFrom), notAfter: Date.parse(x.validTo), coversHost: x.checkHost(host) !== undefined };
      return { cert, pem: pemOf(crt, key) };
    } catch {
      return undefined;
    }
  }
}

/** The gateway role's handle on the owner: made at the first apply or start, with that context's runner and writer. */
export class GatewayAcme {
  private owner: AcmeCertificates | undefined;

  constructor(private readonly reload: () => Promise<void>) {}

  /**
   * Hands over the `tls acme` names of the balancers HAProxy's files on disk were rendered from
   * (`balancers.json`; none: no balancer). Not `ctx.desired`: when an apply fails, the role's
   * reload runs again for the restored files with `desired` still the failed set, and HAProxy
   * serves what is on disk. An unreadable copy changes nothing.
   */
  async update(ctx: Pick<StartContext, 'run' | 'files' | 'log'>, cfg: GatewayConfig): Promise<void> {
    const text = await ctx.files.read(balancersCachePath(cfg.lb));
    const balancers = text === undefined ? [] : parseBalancersCache(text);
    if (!balancers) return;
    const hosts = cfg.lb.enabled ? acmeHosts(balancers) : [];
    this.owner ??= new AcmeCertificates({ run: ctx.run, files: ctx.files, log: ctx.log.child({ component: 'acme' }), reload: this.reload });
    this.owner.update(cfg.lb.acme, haproxySettings(cfg.lb).certDir, hosts);
  }

  stop(): void {
    this.owner?.stop();
  }
}

/** lego's own reason (its last lines), or the error's message. */
function legoReason(err: unknown): string {
  if (!(err instanceof CommandFailedError)) return errorMessage(err);
  if (err.timedOut) return 'lego timed out';
  const lines = err.stderr
    .split('\n')
    .map((l) => l.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '').trim())
    .filter(Boolean);
  return lines.slice(-3).join(' | ').slice(0, 500) || errorMessage(err);
}
