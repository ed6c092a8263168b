/**
 * Who may do what on the controllers' NATS: one nats-server user per admitted node, identified by
 * its nkey, with the permissions of its roles (least privilege). Pure.
 *
 * - controller: everything (it runs JetStream, the registry, the messaging buckets and their keys).
 * - gateway: reads the instance registry (get, list, watch) and the load balancer registry
 *   `mammatus-lb` (get, list, watch: it renders HAProxy from it); it writes neither. Balancers are
 *   written by operators from controller nodes, with those nodes' credentials. It writes its own
 *   target health reports into `mammatus-lb-health` (core/lb-health.ts), keys `<its name>.<balancer>`
 *   only ({@link lbHealthWrite}), and reads nothing of that bucket.
 * - compute: reads the registry, and asks the controllers to change records placed on it by
 *   publishing to `mammatus.registry.node.<its name>` (the registry's write API checks the record's
 *   `node`); it can write no bucket itself.
 * - storage and compute: the volume API, by publishing to `mammatus.volumes.node.<its name>` (the
 *   controllers answer with only the volumes it serves or that are attached to its instances, and
 *   accept reports only for volumes it serves), and the change announcements on
 *   `mammatus.volumes.changed.<its name>`; no volume bucket access at all (the records hold CHAP
 *   secrets, and JetStream reads cannot be narrowed per key).
 * - every admitted node, whatever its roles (issue 20): reads the CA's public bucket `mammatus-ca`
 *   (root, intermediate, fingerprint; get only) and asks for its own certificate by publishing to
 *   `mammatus.ca.sign.<its name>` (the signing service checks the CSR's names against that name).
 *   Nothing of `mammatus-ca-keys`.
 * - every admitted node (issue 22): answers the controllers' metrics requests on its own subject
 *   `mammatus.metrics.<its name>` (subscribe to exactly that; `allow_responses` lets it publish
 *   the answer to the asker's inbox and nowhere else). Asking is the controllers' alone.
 * - no role: only that.
 *
 * Every user's replies arrive on its own inbox prefix (`_INBOX.<its nkey>`), so no node can
 * subscribe to another's replies.
 */
import { CA_BUCKET, CA_SIGN_SUBJECT } from '../../core/ca.js';
import { LB_HEALTH_BUCKET } from '../../core/lb-health.js';
import {
  METRICS_SUBJECT,
  REGISTRY_NODE_SUBJECT,
  VOLUME_CHANGED_SUBJECT,
  VOLUME_NODE_SUBJECT,
  inboxPrefix,
  type AdmittedNode,
} from '../../core/trust.js';

/** The instance registry's KV stream (bucket `mammatus-instances`). */
const REGISTRY_STREAM = 'KV_mammatus-instances';

/** What a user may publish and subscribe to; undefined lists mean "no restriction". */
export interface NatsPermissions {
  readonly publish: { readonly allow: readonly string[] };
  readonly subscribe: { readonly allow: readonly string[] };
  /** May publish to the reply subject of a request it received (once, within the server's default expiry). */
  readonly allow_responses?: boolean;
}

/** One entry of nats-server's `authorization.users`. */
export interface NatsUser {
  readonly nkey: string;
  /** Absent: every subject (controllers). */
  readonly permissions?: NatsPermissions;
}

/**
 * What reading the registry takes, as nats-server 2.9 and nats.js 3.3 use it (traced): stream info,
 * stored and direct gets (the key travels in the body, so reads cannot be narrowed per key), an
 * ordered consumer for watch and keys, and that consumer's flow-control replies (without them a
 * large watch stalls). Nothing here writes: `$KV.mammatus-instances.*` is not allowed.
 */
const REGISTRY_READ = [
  `$JS.API.STREAM.INFO.${REGISTRY_STREAM}`,
  `$JS.API.STREAM.MSG.GET.${REGISTRY_STREAM}`,
  `$JS.API.DIRECT.GET.${REGISTRY_STREAM}.>`,
  `$JS.API.CONSUMER.CREATE.${REGISTRY_STREAM}.>`,
  `$JS.API.CONSUMER.INFO.${REGISTRY_STREAM}.>`,
  `$JS.FC.${REGISTRY_STREAM}.>`,
];

/** The load balancer registry's KV stream (bucket `mammatus-lb`, src/lb/registry.ts). */
const LB_STREAM = 'KV_mammatus-lb';

/** Reading the balancers: the same calls as {@link REGISTRY_READ}, on their stream; no `$KV.` subject (no writes). */
const LB_READ = REGISTRY_READ.map((s) => s.replace(REGISTRY_STREAM, LB_STREAM));

/**
 * What a gateway's health reports take: binding the bucket (stream info) and writing (put, delete:
 * both publish to `$KV.<bucket>.<key>`) keys of exactly one token after its own name. `*`, not `>`:
 * node names may hold dots, and `>` would let gateway `a` write `a.b.web`, which readers take for
 * gateway `a.b`'s report. No get, no consumer: it reads nothing there.
 */
export function lbHealthWrite(node: string): string[] {
  return [`$JS.API.STREAM.INFO.KV_${LB_HEALTH_BUCKET}`, `$KV.${LB_HEALTH_BUCKET}.${node}.*`];
}

/** The CA's public bucket's KV stream. */
const CA_STREAM = `KV_${CA_BUCKET}`;

/**
 * What reading the CA's public bucket takes: stream info (binding) and single-message gets, stored
 * and direct. No consumer (nothing watches it) and no `$KV.` subject (no writes).
 */
const CA_READ = [`$JS.API.STREAM.INFO.${CA_STREAM}`, `$JS.API.STREAM.MSG.GET.${CA_STREAM}`, `$JS.API.DIRECT.GET.${CA_STREAM}.>`];

/** The publish subjects a non-controller with these roles may use. */
function publishAllow(node: AdmittedNode): string[] {
  // Every admitted node gets its certificate: it reads the root and asks for its own name only.
  const allow = new Set<string>([...CA_READ, `${CA_SIGN_SUBJECT}.${node.node}`]);
  const reads = node.roles.includes('gateway') || node.roles.includes('compute');
  if (reads) for (const s of REGISTRY_READ) allow.add(s);
  if (node.roles.includes('gateway')) for (const s of [...LB_READ, ...lbHealthWrite(node.node)]) allow.add(s);
  if (node.roles.includes('compute')) allow.add(`${REGISTRY_NODE_SUBJECT}.${node.node}`);
  if (usesVolumes(node)) allow.add(`${VOLUME_NODE_SUBJECT}.${node.node}`);
  return [...allow];
}

/** Storage nodes serve volumes, compute nodes attach them: both use the volume API. */
function usesVolumes(node: AdmittedNode): boolean {
  return node.roles.includes('storage') || node.roles.includes('compute');
}

/** The nats-server user of one admitted node. */
export function natsUser(node: AdmittedNode): NatsUser {
  if (node.roles.includes('controller')) return { nkey: node.nkey };
  const publish = publishAllow(node);
  return {
    nkey: node.nkey,
    permissions: {
      // Never empty (that would mean "allowed"): every node has at least the CA's subjects.
      publish: { allow: publish },
      subscribe: {
        allow: [
          `${inboxPrefix(node.nkey)}.>`,
          `${METRICS_SUBJECT}.${node.node}`,
          ...(usesVolumes(node) ? [`${VOLUME_CHANGED_SUBJECT}.${node.node}`] : []),
        ],
      },
      allow_responses: true,
    },
  };
}

/** An entry left out of the server's users because another node holds its nkey. */
export interface DuplicateNkey {
  /** The entry left out. */
  readonly node: string;
  /** The node that keeps the key. */
  readonly kept: string;
  readonly nkey: string;
}

/**
 * The entries in user order: this node's own first (over a stale roster copy of it), then the
 * roster by admission time (ties: roster order). Of entries sharing an nkey the first keeps it: the earlier
 * admission, which a later one copying its public key (it is public in the Serf trust tags) must
 * never displace or share.
 */
function ordered(self: AdmittedNode, roster: readonly AdmittedNode[]): AdmittedNode[] {
  // A stable sort: entries admitted at the same time keep the roster's order.
  const rest = roster
    .filter((r) => r.node !== self.node)
    .sort((a, b) => (a.admitted_at < b.admitted_at ? -1 : a.admitted_at > b.admitted_at ? 1 : 0));
  return [self, ...rest];
}

/**
 * The roster entries that share another entry's nkey and are left out of the users (an error:
 * admission refuses such a key, so one here was written around it). The caller logs them.
 */
export function duplicateNkeys(self: AdmittedNode, roster: readonly AdmittedNode[]): DuplicateNkey[] {
  const owner = new Map<string, string>();
  const dups: DuplicateNkey[] = [];
  for (const n of ordered(self, roster)) {
    const kept = owner.get(n.nkey);
    if (kept === undefined) owner.set(n.nkey, n.node);
    else dups.push({ node: n.node, kept, nkey: n.nkey });
  }
  return dups;
}

/**
 * Every user of the server: the admitted nodes, one per nkey (see {@link ordered}: a later entry
 * with an nkey already used is left out, {@link duplicateNkeys} says which), sorted by nkey so the
 * rendered file does not depend on roster order.
 */
export function natsUsers(self: AdmittedNode, roster: readonly AdmittedNode[]): NatsUser[] {
  const byKey = new Map<string, NatsUser>();
  for (const n of ordered(self, roster)) if (!byKey.has(n.nkey)) byKey.set(n.nkey, natsUser(n));
  return [...byKey.values()].sort((a, b) => (a.nkey < b.nkey ? -1 : a.nkey > b.nkey ? 1 : 0));
}
