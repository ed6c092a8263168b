/**
 * The SQS/SNS API as a controller-hosted service. It runs only where it is configured: without
 * `messaging.credentials` (and with signatures verified, the default) there is nothing a client
 * could authenticate with, so the controller logs that the API is off instead of failing its role.
 *
 * It starts in the background and retries until JetStream can hold its streams: a controller that
 * joins as the second of three must not hold up its agent while replicated streams cannot exist yet.
 */
import type { HostedService } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import type { RunningMessagingService } from './service.js';

/** True when `messaging:` asks for the API: credentials given, or signature checks switched off. */
export function messagingWanted(section: unknown): boolean {
  const s = (section ?? {}) as { credentials?: unknown; verify_signatures?: unknown };
  return (Array.isArray(s.credentials) && s.credentials.length > 0) || s.verify_signatures === false;
}

const RETRY_MS = 5000;

/** The hosted messaging service; `section` returns the agent config's current `messaging:` section. */
export function messagingHostedService(section: () => unknown): HostedService {
  let running: RunningMessagingService | undefined;
  let stopped = true;
  let timer: NodeJS.Timeout | undefined;
  let attempt: Promise<void> | undefined;
  return {
    name: 'messaging',
    configKey: () => JSON.stringify(section() ?? null),
    async start(ctx) {
      const raw = section();
      if (!messagingWanted(raw)) {
        ctx.log.info('SQS/SNS API off: no messaging.credentials configured (docs/messaging.md)');
        return;
      }
      // Loaded here, not at import: a controller without the API never loads the engine.
      const [{ parseMessagingSettings }, { startMessagingService }] = await Promise.all([import('./settings.js'), import('./service.js')]);
      // A bad config is the operator's to fix: fail the start (the role reports it) rather than retry.
      const settings = parseMessagingSettings(raw);
      stopped = false;
      const tryStart = (): void => {
        attempt = startMessagingService({ settings, nats: ctx.natsUrl, log: ctx.log, credentials: ctx.credentials }).then(
          async (service) => {
            if (stopped) return void (await service.stop());
            running = service;
          },
          (err: unknown) => {
            if (stopped) return;
            ctx.log.warn({ err: errorMessage(err), retry_ms: RETRY_MS }, 'SQS/SNS API not started yet; retrying');
            timer = setTimeout(tryStart, RETRY_MS);
          },
        );
      };
      tryStart();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await attempt;
      await running?.stop();
      running = undefined;
    },
  };
}
