/**
 * What the metadata service asks of the controllers for planned hosts (issue 19), over NATS: a
 * host's join secret for its seed (the controllers' `mammatus-joins` bucket, which the service reads
 * with the controller's own credentials), its progress (`mammatus.hosts.progress`) and its join
 * (`mammatus.hosts.join`), both answered by the controllers' admission service.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import {
  HOST_JOIN_SUBJECT,
  HOST_PROGRESS_SUBJECT,
  type HostJoinAnswer,
  type HostJoinRequest,
  type HostProgressRequest,
} from '../../core/host-record.js';
import { errorMessage } from '../../core/errors.js';
import { JoinSecrets, type JoinEntry } from '../hosts/joins.js';
import type { HostSeedSettings } from './host-seed.js';

/** The controllers' answer to a progress report. */
export type ProgressAnswer = { readonly ok: true } | { readonly ok: false; readonly error: string };

/** Thrown when no controller answered (none listening, a timeout, NATS down): the host is told 503. */
export class NoControllerAnswer extends Error {
  override readonly name = 'NoControllerAnswer';
}

/** The planned hosts' side of the service. */
export interface HostApi {
  /** `metadata.hosts`; absent = hosts' user-data answers 503 (nothing to seed them with). */
  readonly seed?: HostSeedSettings;
  /** The stored join secret of a host, if one waits. */
  joinSecret(hostId: string): Promise<JoinEntry | undefined>;
  /** True while a joined host's spent secret still lets it repeat its join (its answer was lost). */
  joinRepeatable(hostId: string): Promise<boolean>;
  /** Reports a step. @throws NoControllerAnswer */
  progress(request: HostProgressRequest): Promise<ProgressAnswer>;
  /** Forwards a join. @throws NoControllerAnswer */
  join(request: HostJoinRequest): Promise<HostJoinAnswer>;
}

/**
 * How long a join may take at the controllers: below the gateway proxy's 3 s per-upstream timeout,
 * so a slow answer is never sent to a second controller as a second join with the same secret.
 */
export const JOIN_TIMEOUT_MS = 2500;
const PROGRESS_TIMEOUT_MS = 2000;

/** The API over the service's NATS connection (`nc()` is undefined until it is connected). */
export function natsHostApi(nc: () => NatsConnection | undefined, seed: HostSeedSettings | undefined): HostApi {
  const buckets = new WeakMap<NatsConnection, Promise<JoinSecrets>>();
  const connection = (): NatsConnection => {
    const c = nc();
    if (!c || c.isClosed()) throw new NoControllerAnswer('NATS is not connected');
    return c;
  };
  const secrets = async <T>(read: (j: JoinSecrets) => Promise<T>): Promise<T> => {
    const c = connection();
    let open = buckets.get(c);
    if (!open) buckets.set(c, (open = JoinSecrets.open(c)));
    try {
      return await read(await open);
    } catch (err) {
      buckets.delete(c); // opened again next time (the bucket may not have existed yet)
      throw err;
    }
  };
  const request = async (subject: string, body: unknown, timeout: number): Promise<unknown> => {
    const c = connection();
    try {
      return (await c.request(subject, JSON.stringify(body), { timeout })).json();
    } catch (err) {
      // A reply that is not JSON is a broken controller, not "none answered"; both end in a refusal.
      throw new NoControllerAnswer(`no controller answered on ${subject}: ${errorMessage(err)}`);
    }
  };
  return {
    ...(seed ? { seed } : {}),
    joinSecret: (hostId) => secrets((j) => j.get(hostId)),
    joinRepeatable: (hostId) => secrets((j) => j.repeatable(hostId, new Date())),
    async progress(req) {
      const a = (await request(HOST_PROGRESS_SUBJECT, req, PROGRESS_TIMEOUT_MS)) as Partial<{ ok: unknown; error: unknown }>;
      return a?.ok === true ? { ok: true } : { ok: false, error: typeof a?.error === 'string' ? a.error : 'refused' };
    },
    async join(req) {
      const a = (await request(HOST_JOIN_SUBJECT, req, JOIN_TIMEOUT_MS)) as Partial<HostJoinAnswer>;
      if (a?.ok === true && typeof a.sealed === 'string') return { ok: true, sealed: a.sealed };
      return { ok: false, error: typeof a?.error === 'string' ? a.error : 'the controllers refused the join' };
    },
  };
}
