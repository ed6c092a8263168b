/**
 * A load balancer of the registry (issue 21): what an operator asked for with `mammatus lb create`,
 * kept engine-neutral (HAProxy renders it today; a traefik renderer could read the same record),
 * and what its targets resolve to at one moment. The record names its targets by selector
 * (`instance:NAME`, `tag:KEY=VALUE`, `member:NAME`), never by address, so targets follow launches,
 * deletes and address changes without anyone editing the balancer. Types only; the checks and the
 * resolution live beside their users (src/lb/, roles/gateway/lb/).
 */

/** How a balancer speaks: HTTP (routing by Host and path prefix) or plain TCP (or TLS passthrough by SNI). */
export type LbMode = 'http' | 'tcp';

/**
 * TLS at the listener: `none` (plain), `acme` (the gateway terminates TLS with certificates from the
 * cluster CA or another ACME directory), `passthrough` (TCP mode, routed by SNI, not terminated).
 */
export type LbTls = 'none' | 'acme' | 'passthrough';

/** How requests are spread over a backend's servers. */
export type LbBalance = 'roundrobin' | 'leastconn';

/** Which machines a target selects. */
export type LbSelector =
  | { readonly kind: 'instance'; readonly name: string }
  | { readonly kind: 'tag'; readonly key: string; readonly value: string }
  | { readonly kind: 'member'; readonly name: string };

/** One `--target SELECTOR:PORT`. */
export interface LbTarget {
  readonly selector: LbSelector;
  readonly port: number;
}

/** The health check of a balancer's servers: an HTTP GET of `path` (2xx/3xx is up) or a TCP connect. */
export type LbHealth = { readonly kind: 'http'; readonly path: string } | { readonly kind: 'tcp' };

/** One load balancer. Times are ISO 8601 (UTC) as `Date#toISOString` writes them. */
export interface LoadBalancerRecord {
  /** A DNS label. Unique. */
  readonly name: string;
  /** Where the gateway listens: `addr` absent = every WAN address of the gateway. */
  readonly listen: { readonly addr?: string; readonly port: number };
  readonly mode: LbMode;
  /**
   * Host names it answers for (HTTP: the Host header; passthrough: the SNI name), lower case; empty =
   * every name on its port (at most one such balancer per port and mode).
   */
  readonly hosts: readonly string[];
  /** HTTP only: a path prefix (`/api`); absent = every path. */
  readonly path?: string;
  readonly targets: readonly LbTarget[];
  readonly health: LbHealth;
  readonly tls: LbTls;
  readonly balance: LbBalance;
  /** Also decides which of two conflicting balancers is served: the older (then the lower name). */
  readonly created_at: string;
  readonly updated_at: string;
}

/** One server a balancer sends to, as its targets resolved. */
export interface LbServer {
  /**
   * Stable across resolutions while the machine and port stay, so a renderer and the engine's
   * runtime API can add and remove single servers by name: `i-<instance name>-<port>` or
   * `m-<member name>-<port>`. The kind is part of the name, so an instance and a Serf member that
   * share a name are two servers, never one whose address moves between two machines.
   */
  readonly name: string;
  /** An IPv4 or IPv6 address. */
  readonly addr: string;
  readonly port: number;
}

/** A balancer with its targets resolved: what an engine renders. */
export interface ResolvedBalancer {
  readonly record: LoadBalancerRecord;
  /** Sorted by name; empty when no target resolves (the engine answers 503 / refuses connections). */
  readonly servers: readonly LbServer[];
}

/** A balancer the gateway does not serve, and why (a reserved port, a conflict, a listen it cannot take). */
export interface LbLeftOut {
  readonly name: string;
  readonly reason: string;
}
