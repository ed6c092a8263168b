/**
 * Node certificates over NATS (issue 20): every controller answers `mammatus.ca.sign.<node>` in one
 * queue group, signing the node's CSR with the shared intermediate, so any controller issues and
 * renews and one down stops nothing.
 *
 * Who asks is proven by NATS, not by the request: a node's nkey user may publish only its own
 * `mammatus.ca.sign.<its name>` (roles/controller/permissions.ts), and the service signs only names
 * of the node the subject names (src/ca/pki.ts). It runs in the agent: the intermediate's key is
 * read from the controllers-only bucket at each request (a new `ca init` takes effect at once).
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { CA_SIGN_SUBJECT, MAX_CA_SIGN_REQUEST_BYTES, type CaSignAnswer } from '../../core/ca.js';
import type { HostedService, Logger, Member } from '../../core/contracts.js';
import { detach, errorMessage } from '../../core/errors.js';
import { parseDuration } from '../../core/duration.js';
import { natsApiService } from '../../core/nats-hosted.js';
import type { NodeCredentials } from '../../core/trust.js';
import { NODE_CERT_LIFETIME_MS, PkiError, normalizeIp, signNodeCsr, type CertAndKey } from './pki.js';
import { CaStore } from './store.js';

/** The queue group every controller answers in. */
const QUEUE = 'mammatus-ca';

/** What answering needs (the real bucket in {@link serveCaSign}; tests may pass others). */
export interface SignDeps {
  /** The shared intermediate with its key; undefined when no `ca init` ran. */
  readonly intermediate: () => Promise<CertAndKey | undefined>;
  /** The IP addresses node `node` may have in its certificate (its Serf addresses). */
  readonly addresses: (node: string) => readonly string[];
  /** Lifetime of a node certificate. */
  readonly lifetimeMs: () => number;
  readonly now?: () => Date;
  readonly log: Logger;
}

/** Parses a request body: a JSON object with one string field `csr`; throws PkiError. */
function parseRequest(data: Uint8Array): string {
  if (data.length > MAX_CA_SIGN_REQUEST_BYTES) throw new PkiError(`request larger than ${MAX_CA_SIGN_REQUEST_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    throw new PkiError('request is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PkiError('request is not a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'csr') throw new PkiError(`request: unknown field ${k}`);
  if (typeof o.csr !== 'string' || o.csr === '') throw new PkiError('request: csr must be a PEM certificate request');
  return o.csr;
}

/** Answers one request of node `node` (the subject's last token). Never throws. */
export async function answerSign(deps: SignDeps, node: string, data: Uint8Array): Promise<CaSignAnswer> {
  try {
    const csrPem = parseRequest(data);
    const intermediate = await deps.intermediate();
    if (!intermediate) return { ok: false, error: 'the cluster has no CA yet (mammatus ca init)' };
    const signed = await signNodeCsr({
      csrPem,
      node,
      allowedIps: deps.addresses(node),
      intermediate,
      lifetimeMs: deps.lifetimeMs(),
      now: deps.now?.(),
    });
    deps.log.info({ node, not_after: signed.notAfter.toISOString() }, 'node certificate issued');
    return { ok: true, chain: signed.chainPem, not_after: signed.notAfter.toISOString() };
  } catch (err) {
    if (err instanceof PkiError) {
      deps.log.warn({ node, err: err.message }, 'node certificate refused');
      return { ok: false, error: err.message };
    }
    deps.log.error({ node, err: errorMessage(err) }, 'node certificate: the CA could not be read');
    return { ok: false, error: `the controllers could not sign: ${errorMessage(err)}` };
  }
}

/**
 * The Serf addresses of member `node` (every status: a node just failing still renews) that no
 * other member claims. Serf addresses are self-asserted: a node advertising a controller's address
 * must not get a certificate for it, so an address two members hold goes in neither's certificate
 * (a member that left gave its address up). The agent asks for the same (agent/certs.ts).
 */
export function memberAddresses(members: readonly Member[], node: string): string[] {
  const key = (addr: string) => normalizeIp(addr) ?? addr;
  const claimed = new Set(members.filter((m) => m.name !== node && m.status !== 'left').map((m) => key(m.addr)));
  return members.filter((m) => m.name === node && !claimed.has(key(m.addr))).map((m) => m.addr);
}

/**
 * Serves `mammatus.ca.sign.*` on `nc` until closed, one request at a time per controller (signing
 * is a few milliseconds; a burst waits its turn instead of piling up work).
 */
export function serveCaSign(nc: NatsConnection, deps: Omit<SignDeps, 'intermediate'>): { close(): void } {
  let store: Promise<CaStore | undefined> | undefined;
  const intermediate = async (): Promise<CertAndKey | undefined> => {
    // Bound again after a miss: `ca init` may run while this serves.
    const s = await (store ??= CaStore.bind(nc));
    if (!s) store = undefined;
    return s?.intermediate();
  };
  const sub: Subscription = nc.subscribe(`${CA_SIGN_SUBJECT}.*`, { queue: QUEUE });
  detach(
    (async () => {
      for await (const msg of sub) {
        const node = msg.subject.slice(CA_SIGN_SUBJECT.length + 1);
        // answerSign never throws; a refusal re-binds the bucket next time (ca init may have run).
        const reply: CaSignAnswer = await answerSign({ ...deps, intermediate }, node, msg.data);
        if (!reply.ok) store = undefined;
        respond(msg, reply);
      }
    })(),
    (err) => deps.log.error({ err }, 'CA signing service stopped'),
  );
  return { close: () => sub.unsubscribe() };
}

function respond(msg: Msg, reply: CaSignAnswer): void {
  if (msg.reply) msg.respond(JSON.stringify(reply));
}

/** What the hosted service is built with. */
export interface CaSignWiring {
  readonly credentials: () => NodeCredentials | undefined;
  /** Lifetime of node certificates (`roles.controller.ca.node_cert_lifetime`; default 24 h). */
  readonly lifetimeMs?: () => number;
}

/**
 * The node certificate lifetime: `MAMMATUS_CA_NODE_CERT_LIFETIME` in the agent's environment when
 * set (a Go duration, at least 10 s: tests and labs that need seconds, below the config's 5 min
 * minimum), else `configured` (`roles.controller.ca.node_cert_lifetime`, checked by the role's
 * config), else 24 h.
 */
export function nodeCertLifetime(configured?: string, env: NodeJS.ProcessEnv = process.env): number {
  const override = env.MAMMATUS_CA_NODE_CERT_LIFETIME;
  for (const [text, min] of [
    [override, 10_000],
    [configured, 1000],
  ] as const) {
    if (!text) continue;
    try {
      return Math.max(min, parseDuration(text));
    } catch {
      // An unreadable override falls through to the config; the config was checked at load.
    }
  }
  return NODE_CERT_LIFETIME_MS;
}

/** The signing service as a hosted service of the controller role. */
export function caSignHostedService(w: CaSignWiring): HostedService {
  return natsApiService({
    name: 'ca-sign',
    connectionName: 'mammatus-ca',
    credentials: w.credentials,
    serve: (nc, ctx, members) =>
      serveCaSign(nc, {
        addresses: (node) => memberAddresses(members(), node),
        lifetimeMs: w.lifetimeMs ?? (() => nodeCertLifetime()),
        log: ctx.log,
      }),
  });
}
