/**
 * The metadata service's paths for planned hosts (issue 19):
 *
 * - `GET /mammatus/ipxe[?boot_url=http://IPv4:PORT]`: the host's iPXE script (ipxe-script.ts);
 *   records `booted`.
 * - `GET /nocloud/…` of a host: its seed (host-seed.ts); serving `user-data` records `seeded`.
 * - `POST /mammatus/join` {secret, nkey, box}: forwarded to the controllers as a HostJoinRequest,
 *   their HostJoinAnswer returned; for a host recorded as joined only while its spent secret still
 *   allows a repeat (its first answer may have been lost when this service gave up waiting).
 * - `POST /mammatus/installed`: reports `installed`.
 *
 * Every one answers only a caller that a gateway's proxy vouched for by a MAC of a planned host's
 * record (no source-address identification: a host's seed holds its join secret); anyone else gets
 * 404. The POSTs also need an IMDSv2 token of that host (PUT /latest/api/token first). A progress
 * report that fails is logged and never holds up the answer. Nothing here logs a secret or a body.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import type { HostProgressRequest, HostJoinRequest } from '../../core/host-record.js';
import { JOIN_SECRET } from '../../core/host-record.js';
import { answerJson, answerText, NOT_FOUND, type Answer } from './answer.js';
import type { Caller, Request } from './caller.js';
import { NoControllerAnswer, type HostApi } from './host-api.js';
import { hostUserData, seedSecret, type HostRecord } from './host-seed.js';
import { isBootUrl, renderIpxeScript } from './ipxe-script.js';
import { nocloudTree, walk, listing, type TreeContext } from './tree.js';

/** What the host routes need from the service. */
export interface HostRouteDeps {
  readonly api?: HostApi;
  readonly log: Logger;
  readonly now: () => number;
  /** True when the request carries a valid IMDSv2 token of instance `id`. */
  validToken(req: IncomingMessage, id: string): boolean;
}

/** The host routes. */
export interface HostRoutes {
  /** The caller as a planned host, when it is one and its MAC was vouched for; else undefined. */
  hostOf(caller: Caller): HostRecord | undefined;
  ipxe(req: IncomingMessage, host: HostRecord): Answer;
  nocloud(req: IncomingMessage, host: HostRecord, ctx: TreeContext, rest: readonly string[]): Promise<Answer>;
  /** A POST to `path` (see {@link hostPostPath}) by a caller the service resolved. */
  post(req: Request, path: HostPostPath, caller: ResolvedCaller): Answer | Promise<Answer>;
}

/** The paths hosts POST to. */
export type HostPostPath = 'join' | 'installed';

/** A caller the service found. */
export type ResolvedCaller = Exclude<Caller, { status: number }>;

/** Which host POST path `segments` name, or undefined for any other path. */
export function hostPostPath(segments: readonly string[]): HostPostPath | undefined {
  const path = segments.filter(Boolean);
  return path.length === 2 && path[0] === 'mammatus' && (path[1] === 'join' || path[1] === 'installed') ? path[1] : undefined;
}

const NKEY_USER = /^U[A-Z2-7]{55}$/;
const BOX = /^[A-Za-z0-9+/]{43}=$/; // base64 of 32 bytes
const UNAVAILABLE = { 'retry-after': '1' };

/** Builds the routes. */
export function hostRoutes(deps: HostRouteDeps): HostRoutes {
  const { log } = deps;

  /** Reports a step in the background: the host's answer never waits for it. */
  const report = (host: HostRecord, step: HostProgressRequest['step']) => {
    if (!deps.api) return;
    deps.api.progress({ host_id: host.id, step }).then(
      (a) => {
        if (!a.ok) log.warn({ host: host.id, step, why: a.error }, 'host progress refused');
      },
      (err: unknown) => log.warn({ host: host.id, step, why: errorMessage(err) }, 'host progress not recorded'),
    );
  };

  const hostOf = (caller: Caller): HostRecord | undefined => {
    if ('status' in caller || !caller.record.host || !caller.mac) return undefined;
    const mac = caller.mac.toLowerCase();
    return caller.record.macs.includes(mac) ? (caller.record as HostRecord) : undefined;
  };

  const ipxe = (req: IncomingMessage, host: HostRecord): Answer => {
    const url = req.url ?? '';
    const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
    const bootUrl = query.get('boot_url') ?? undefined;
    if (bootUrl !== undefined && !isBootUrl(bootUrl)) return answerText(400, 'boot_url must be http://<IPv4>:<port>');
    const installed = Boolean(host.host.progress.installed);
    const script = renderIpxeScript({ name: host.name, arch: host.host.arch, installed, ...(bootUrl ? { bootUrl } : {}) });
    if (req.method === 'GET' && !host.host.progress.booted) report(host, 'booted');
    return answerText(200, script);
  };

  const nocloud = async (req: IncomingMessage, host: HostRecord, ctx: TreeContext, rest: readonly string[]): Promise<Answer> => {
    const leaf = rest.filter(Boolean);
    // Only the user-data needs the secret (a KV read) and the settings; other leaves are cheap.
    let userData = '';
    if (leaf.length === 1 && leaf[0] === 'user-data') {
      if (!deps.api?.seed) {
        log.error({ host: host.id }, 'metadata.hosts.apt_url is not set: a planned host cannot be seeded');
        return answerText(503, 'Service Unavailable', UNAVAILABLE);
      }
      let entry;
      try {
        entry = host.host.progress.joined ? undefined : await deps.api.joinSecret(host.id);
      } catch (err) {
        log.warn({ host: host.id, why: errorMessage(err) }, 'join secret unreadable; seed not served');
        return answerText(503, 'Service Unavailable', UNAVAILABLE);
      }
      userData = hostUserData(host, deps.api.seed, seedSecret(host, entry, new Date(deps.now())));
      if (req.method === 'GET' && !host.host.progress.seeded) report(host, 'seeded');
    }
    // Vendor-data (tenant services' agents) is for instances, not for nodes: a host gets none.
    // network-config answers 200 and empty (DHCP as the kernel line has it): a 404 costs a host ten
    // one-second retries of cloud-init's NoCloud reader (25.1).
    if (leaf.length === 1 && leaf[0] === 'network-config') return { status: 200, body: '', type: 'text/plain; charset=utf-8' };
    const node = walk(nocloudTree(host, ctx, '', userData), rest);
    if (!node) return NOT_FOUND;
    return node.kind === 'dir' ? answerText(200, listing(node)) : { status: 200, body: node.body, type: node.type };
  };

  const post = (req: Request, path: HostPostPath, caller: ResolvedCaller): Answer | Promise<Answer> => {
    const host = hostOf(caller);
    if (!host || !caller.mac) return NOT_FOUND;
    if (!deps.validToken(req, host.id)) return answerText(401, 'Unauthorized');
    if (!deps.api) return answerText(503, 'Service Unavailable', UNAVAILABLE);
    return path === 'join' ? join(req, host, caller.mac) : installed(host);
  };

  const join = async (req: Request, host: HostRecord, mac: string): Promise<Answer> => {
    const body = parseJoinBody(req.body);
    if (typeof body === 'string') return answerText(400, body);
    // A joined host may be repeating a join whose answer it never got (this service gave up
    // waiting): the controllers answer that again. Refused here only when no repeat can pass.
    if (host.host.progress.joined && !(await repeatable(host)))
      return answerJson(200, { ok: false, error: 'this host has joined already (mammatus host rejoin NAME for a new secret)' });
    const request: HostJoinRequest = { host_id: host.id, mac: mac.toLowerCase(), ...body };
    try {
      const a = await deps.api!.join(request);
      log.info({ host: host.id, name: host.name, ok: a.ok, ...(a.ok ? {} : { why: a.error }) }, 'host join forwarded');
      return answerJson(200, a);
    } catch (err) {
      if (!(err instanceof NoControllerAnswer)) throw err;
      log.warn({ host: host.id, why: err.message }, 'host join: no controller answered');
      return { ...answerJson(503, { ok: false, error: 'no controller answered; try again' }), headers: UNAVAILABLE };
    }
  };

  /** Whether a joined host's secret may still be repeated; when unreadable, the controllers decide. */
  const repeatable = (host: HostRecord): Promise<boolean> =>
    deps.api!.joinRepeatable(host.id).catch((err: unknown) => {
      log.warn({ host: host.id, why: errorMessage(err) }, 'join secret unreadable; join forwarded');
      return true;
    });

  const installed = async (host: HostRecord): Promise<Answer> => {
    try {
      const a = await deps.api!.progress({ host_id: host.id, step: 'installed' });
      return answerJson(200, a);
    } catch (err) {
      if (!(err instanceof NoControllerAnswer)) throw err;
      log.warn({ host: host.id, why: err.message }, 'host installed: no controller answered');
      return { ...answerJson(503, { ok: false, error: 'no controller answered; try again' }), headers: UNAVAILABLE };
    }
  };

  return { hostOf, ipxe, nocloud, post };
}

/** The join body's three fields, checked; or why it is refused (said to the host, never echoing it). */
export function parseJoinBody(body: Buffer | undefined): Pick<HostJoinRequest, 'secret' | 'nkey' | 'box'> | string {
  let v: unknown;
  try {
    v = JSON.parse((body ?? Buffer.alloc(0)).toString('utf8'));
  } catch {
    return 'the body must be JSON {"secret", "nkey", "box"}';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'the body must be JSON {"secret", "nkey", "box"}';
  const o = v as Record<string, unknown>;
  if (Object.keys(o).some((k) => !['secret', 'nkey', 'box'].includes(k))) return 'unknown field in the body';
  if (typeof o.secret !== 'string' || !JOIN_SECRET.test(o.secret)) return 'secret: must be the join secret (43 base64url characters)';
  if (typeof o.nkey !== 'string' || !NKEY_USER.test(o.nkey)) return 'nkey: must be a NATS user public key (U…)';
  if (typeof o.box !== 'string' || !BOX.test(o.box)) return 'box: must be an X25519 public key (base64 of 32 bytes)';
  return { secret: o.secret, nkey: o.nkey, box: o.box };
}
