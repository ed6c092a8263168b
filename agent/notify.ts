/**
 * systemd readiness without a native addon: spawn `systemd-notify` when the unit is Type=notify
 * (NOTIFY_SOCKET set). Outside systemd this is a no-op; failures are never fatal.
 */
import type { Run } from '../roles/types.js';

/** Sends `args` (e.g. `--ready`, `--status=...`) to systemd if we run under it. */
export async function sdNotify(run: Run, ...args: string[]): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return;
  await run('systemd-notify', args, { timeoutMs: 5000 }).catch(() => undefined);
}
