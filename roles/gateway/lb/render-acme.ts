/**
 * What the `tls acme` balancers add to the gateway's render (pure), so that an ACME CA can check
 * the gateway's http-01 answers (acme.ts runs lego on a loopback port):
 *
 * - HAProxy: the plain HTTP frontend on port 80 sends `/.well-known/acme-challenge/` to lego's
 *   port, before any Host routing (the CA asks for the balancer's own name, which the Host map
 *   would send to the balancer's servers), but only for the `tls acme` balancers' own hosts: other
 *   hosts' challenges still reach their servers (a backend running its own ACME client). When no
 *   balancer listens on port 80, a frontend on port 80 serves the challenges alone, since http-01
 *   always asks port 80. Only while a `tls acme` balancer exists; port 80 held by anything but
 *   plain HTTP leaves the `tls acme` balancers out (render-lb.ts), so no TCP backend answers the
 *   CA for names that are not its own.
 * - DNS: the CA resolves the name through the gateway's DNS (render-acme-hosts.ts).
 * - Firewall: port 80 from the WAN side (a public CA) and from the LAN side (the cluster CA on the
 *   controllers), while a `tls acme` balancer exists.
 */
import type { LoadBalancerRecord, ResolvedBalancer } from '../../../core/lb-record.js';
import type { HaproxySettings } from './render-haproxy.js';

/** The backend that forwards http-01 challenges to lego. */
export const ACME_BACKEND = 'mammatus_acme';
/** The path prefix of every http-01 challenge (RFC 8555, 8.3). */
export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';
/** The port http-01 checks. */
export const ACME_HTTP_PORT = 80;

/** Whether any balancer takes its certificates from ACME. */
export const hasAcme = (balancers: readonly ResolvedBalancer[] | undefined): boolean =>
  (balancers ?? []).some((b) => b.record.tls === 'acme');

/** HAProxy's settings with lego's loopback http-01 port (lb/config.ts `haproxySettings`). */
export interface AcmeHaproxySettings extends HaproxySettings {
  readonly acmeChallengePort?: number;
}

/** lego's port when the settings name one (unset: no challenge routes). */
const challengePort = (s: HaproxySettings): number | undefined =>
  'acmeChallengePort' in s && typeof s.acmeChallengePort === 'number' ? s.acmeChallengePort : undefined;

const active = (balancers: readonly ResolvedBalancer[], s: HaproxySettings): boolean =>
  challengePort(s) !== undefined && hasAcme(balancers);

/**
 * The challenge rule of a plain HTTP frontend whose first balancer is `first` (it goes before the
 * Host routing), or nothing: a TLS frontend never sees http-01.
 */
export function acmeChallengeRule(balancers: readonly ResolvedBalancer[], first: LoadBalancerRecord, s: HaproxySettings): string[] {
  if (first.tls !== 'none' || first.listen.port !== ACME_HTTP_PORT || !active(balancers, s)) return [];
  return [`  use_backend ${ACME_BACKEND} if { path_beg ${ACME_CHALLENGE_PATH} } { var(txn.lb_host) -m str ${acmeHosts(balancers)} }`];
}

/** The `tls acme` balancers' hosts, sorted, space-separated (checked DNS names: nothing HAProxy parses). */
function acmeHosts(balancers: readonly ResolvedBalancer[]): string {
  return [...new Set(balancers.filter((b) => b.record.tls === 'acme').flatMap((b) => b.record.hosts))].sort().join(' ');
}

/**
 * Config sections: the challenge-only frontend (when port 80 has no balancer; a TCP balancer on 80
 * leaves the challenges unanswered, and lego's failure says so) and the backend to lego.
 */
export function renderAcmeSections(balancers: readonly ResolvedBalancer[], s: HaproxySettings): string[] {
  if (!active(balancers, s)) return [];
  const port80 = balancers.some((b) => b.record.listen.port === ACME_HTTP_PORT);
  const frontends = port80
    ? []
    : [
        [
          `frontend ft_acme_${ACME_HTTP_PORT}`,
          '  mode http',
          ...[...s.wildcardAddrs].sort().map((a) => `  bind ${a.includes(':') ? `[${a}]` : a}:${ACME_HTTP_PORT}`),
          // http-request rules run before any backend is chosen: the 404 must spare the challenges.
          `  http-request return status 404 content-type text/plain string "not found" unless { path_beg ${ACME_CHALLENGE_PATH} } { req.hdr(host),field(1,:),lower -m str ${acmeHosts(balancers)} }`,
          `  default_backend ${ACME_BACKEND}`,
        ].join('\n'),
      ];
  const backend = [
    `backend ${ACME_BACKEND}`,
    '  mode http',
    // No health check: lego listens only while it solves a challenge.
    `  server lego 127.0.0.1:${challengePort(s)}`,
  ].join('\n');
  return [...frontends, backend];
}

/** The ports the firewall opens for the challenges: WAN and LAN side (see the header). */
export function acmeFirewallPorts(balancers: readonly ResolvedBalancer[] | undefined): number[] {
  return hasAcme(balancers) ? [ACME_HTTP_PORT] : [];
}
