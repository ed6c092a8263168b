/**
 * How far a planned host got, as `host list`, `host show` and `status --hosts` say it. Its own
 * module so those commands share it without importing each other.
 */
import { lastStep, type HostPlan } from '../../core/host-record.js';
import type { InstanceRecord } from '../../core/instance-record.js';

/** Where a host is now: its last recorded step, or `ok` once it is an alive member whose trust tag verifies. */
export function hostProgress(r: InstanceRecord & { host: HostPlan }, members: ReadonlyMap<string, string> | undefined): string {
  const last = lastStep(r.host);
  if (last?.step !== 'registered' && members?.get(r.name) === 'alive') return 'ok';
  if (!last) return '-';
  const expired = last.step === 'registered' && Date.parse(r.host.join_expires_at) < Date.now();
  return expired ? 'registered (join secret expired: host rejoin)' : last.step;
}
