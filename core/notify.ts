/**
 * systemd readiness without a native addon: spawn `systemd-notify` when the unit is Type=notify
 * (NOTIFY_SOCKET set). Outside systemd this is a no-op; failures are never fatal.
 */
import type { Run } from './contracts.js';

/**
 * Sends `args` to systemd if we run under it: `--ready`, `--status=…`, or `NAME=VALUE` assignments
 * such as `RELOADING=1` and `STOPPING=1` (the `--reloading`/`--stopping` flags need systemd 253;
 * Debian 12 has 252).
 */
export async function sdNotify(run: Run, ...args: string[]): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return;
  await run('systemd-notify', args, { timeoutMs: 5000 }).catch(() => undefined);
}
