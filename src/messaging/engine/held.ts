/** What a router keeps of each queue whose lease it holds (queue-leases.ts). */
import type { Subscription } from '@nats-io/transport-node';
import type { QueueRecord } from './catalog.js';
import type { QueueOwner } from './queue-owner.js';

/** A queue whose lease this controller holds (or held, until it is dropped). */
export interface Held {
  readonly record: QueueRecord;
  readonly owner: Promise<QueueOwner>;
  /** The owner once it has loaded (metrics read its counts without waiting). */
  loaded?: QueueOwner;
  revision: number;
  renewedAt: number;
  /** The renewal under way (one at a time: a slow NATS must not stack them up). */
  renewing?: Promise<void>;
  /** Operations under way through this router (counted before they wait for the owner). */
  busy: number;
  /** When the last operation ended, or the queue was taken over. */
  usedAt: number;
  sweptAt: number;
  sub?: Subscription;
  /**
   * Forwarded receives under way, by the id their sender cancels them with; made by the first
   * forwarded operation (a queue only this controller uses carries none: memory per owned queue).
   */
  cancels?: Map<string, AbortController>;
  /** Takes no more operations (handed over or lost). */
  dropped: boolean;
  /** The lease was found taken or gone, or is being handed back: nothing more is answered. */
  lost: boolean;
}
