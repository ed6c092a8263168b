/**
 * What the gateway's certificate owner (acme.ts) does next, as a pure function of what it sees:
 * which `tls acme` host names need a first certificate, a renewal, the issued certificate copied
 * to HAProxy's directory, or their served certificate removed.
 *
 * A certificate is renewed once less than a third of its lifetime is left: the cluster CA's live
 * 12 h (renewed after 8 h), a public CA's 90 days (after 60). Lifetimes differ too much for a fixed
 * number of days, and lego's `renew --days` counts whole days, which a 12 h certificate never has.
 */
import type { ResolvedBalancer } from '../../../core/lb-record.js';

/** The validity of the certificate lego holds for a host (epoch milliseconds). */
export interface IssuedCert {
  readonly notBefore: number;
  readonly notAfter: number;
  /** The certificate names the host (a changed name set needs a new certificate). */
  readonly coversHost: boolean;
}

/** What the owner sees. */
export interface AcmeView {
  /** Host names the `tls acme` balancers serve. */
  readonly wanted: readonly string[];
  /** lego's current certificate per host (absent: none yet). */
  readonly issued: ReadonlyMap<string, IssuedCert>;
  /** Hosts with a file in HAProxy's directory, and whether it is lego's current certificate and key. */
  readonly served: ReadonlyMap<string, boolean>;
  /** Hosts whose last attempt failed, and when they may be tried again. */
  readonly retryAt: ReadonlyMap<string, number>;
  readonly now: number;
}

/** The steps, each list sorted. */
export interface AcmePlan {
  /** No usable certificate: `lego run`. */
  readonly obtain: string[];
  /** Due for renewal (or expired): `lego renew`. */
  readonly renew: string[];
  /** Issued and current, but HAProxy's directory holds another file or none: copy it. */
  readonly install: string[];
  /** Served, but no balancer names the host any more. */
  readonly remove: string[];
  /** Due, but waiting for their retry time after a failure. */
  readonly waiting: string[];
}

/** The host names of the `tls acme` balancers, sorted, each once. */
export function acmeHosts(balancers: readonly ResolvedBalancer[] | undefined): string[] {
  const hosts = new Set((balancers ?? []).filter((b) => b.record.tls === 'acme').flatMap((b) => b.record.hosts));
  return [...hosts].sort(cmp);
}

/** Whether `cert` is due for renewal at `now`: less than a third of its lifetime left. */
export function renewalDue(cert: IssuedCert, now: number): boolean {
  return now >= cert.notAfter - (cert.notAfter - cert.notBefore) / 3;
}

/** When `cert` becomes due (see `renewalDue`). */
export function renewalAt(cert: IssuedCert): number {
  return cert.notAfter - (cert.notAfter - cert.notBefore) / 3;
}

/** Sorts every host into one step (or none: current and served). */
export function planAcme(view: AcmeView): AcmePlan {
  const plan = { obtain: [] as string[], renew: [] as string[], install: [] as string[], remove: [] as string[], waiting: [] as string[] };
  const wanted = new Set(view.wanted);
  for (const host of [...wanted].sort(cmp)) {
    const cert = view.issued.get(host);
    const step = !cert || !cert.coversHost ? plan.obtain : renewalDue(cert, view.now) ? plan.renew : undefined;
    if (step) {
      if ((view.retryAt.get(host) ?? 0) > view.now) plan.waiting.push(host);
      else step.push(host);
    } else if (view.served.get(host) !== true) plan.install.push(host);
  }
  for (const host of [...view.served.keys()].sort(cmp)) if (!wanted.has(host)) plan.remove.push(host);
  return plan;
}

/** The delay before retry number `failures` (1, 2, …): 30 s doubling, at most `max`. */
export function retryDelay(failures: number, maxMs: number): number {
  return Math.min(30_000 * 2 ** Math.max(0, failures - 1), maxMs);
}

// Code-unit order: the plan must not depend on the host's locale.
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
