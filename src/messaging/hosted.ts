/**
 * The SQS/SNS API as a controller-hosted service. It runs only where it is configured: without
 * `messaging.credentials` (and with signatures verified, the default) there is nothing a client
 * could authenticate with, so the controller logs that the API is off instead of failing its role.
 *
 * It starts in the background and retries until JetStream can hold its streams: a controller that
 * joins as the second of three must not hold up its agent while replicated streams cannot exist yet.
 *
 * In the agent it runs as a child process under the unprivileged service user
 * (core/child-service.ts): the section (with the access keys), the node's seed and the SNS signing
 * key's PEMs (read here, as root) reach it over the IPC channel.
 */
import { readFile } from 'node:fs/promises';
import type { HostedService, Logger } from '../../core/contracts.js';
import { ChildService, exportChildMetrics, serviceArgv, type ChildWiring } from '../../core/child-service.js';
import { errorMessage } from '../../core/errors.js';
import { forwardNatsRoot, natsCaField } from '../../core/nats.js';
import { forwardNodeTls, nodeTlsField } from '../../core/node-tls.js';
import type { RunningMessagingService } from './service.js';

/** True when `messaging:` asks for the API: credentials given, or signature checks switched off. */
export function messagingWanted(section: unknown): boolean {
  const s = (section ?? {}) as { credentials?: unknown; verify_signatures?: unknown };
  return (Array.isArray(s.credentials) && s.credentials.length > 0) || s.verify_signatures === false;
}

/** Whether the API should run; when not, says why in the log. */
function wantedOrSaySo(raw: unknown, log: Logger): boolean {
  if (messagingWanted(raw)) return true;
  log.info('SQS/SNS API off: no messaging.credentials configured (docs/messaging.md)');
  return false;
}

const RETRY_MS = 5000;

/** The hosted messaging service; `section` returns the agent config's current `messaging:` section. */
export function messagingHostedService(section: () => unknown, child?: ChildWiring): HostedService {
  if (child) return messagingChild(section, child);
  let running: RunningMessagingService | undefined;
  let stopped = true;
  let timer: NodeJS.Timeout | undefined;
  let attempt: Promise<void> | undefined;
  return {
    name: 'messaging',
    configKey: () => JSON.stringify(section() ?? null),
    async start(ctx) {
      const raw = section();
      if (!wantedOrSaySo(raw, ctx.log)) return;
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

/** The hosted SQS/SNS API as a supervised child process; ready once its settings are accepted. */
function messagingChild(section: () => unknown, w: ChildWiring): HostedService {
  let child: ChildService | undefined;
  let unforward: (() => void) | undefined;
  let unexport: (() => void) | undefined;
  return {
    name: 'messaging',
    configKey: () => JSON.stringify(section() ?? null),
    async start(ctx) {
      const raw = section();
      if (!wantedOrSaySo(raw, ctx.log)) return;
      const { parseMessagingSettings, messagingNodeFlags } = await import('./settings.js');
      // Checked here, so a bad config fails the start before anything is spawned.
      const { sns, heapMb } = parseMessagingSettings(raw).engine;
      const signing =
        sns.signingKeyFile && sns.signingCertFile
          ? { key: await readFile(sns.signingKeyFile, 'utf8'), cert: await readFile(sns.signingCertFile, 'utf8') }
          : undefined;
      const init = {
        type: 'init' as const,
        service: 'messaging',
        level: w.level(),
        section: raw,
        natsUrl: ctx.natsUrl,
        ...(ctx.credentials ? { seed: ctx.credentials.seed } : {}),
        ...(signing ? { signing } : {}),
      };
      const spawn = await w.spawn();
      child = new ChildService({
        spawn,
        log: ctx.log,
        name: 'messaging',
        argv: serviceArgv(w.mammatus, 'messaging', messagingNodeFlags(heapMb)),
        user: w.user(),
      });
      // The NATS root read at each (re)start: a child started before the first certificate gets it at its next start.
      await child.start(() => ({ ...init, ...natsCaField(), ...nodeTlsField() }));
      // A renewal may bring a new root (the first certificate, a root rotation): the child takes it at once.
      unforward?.();
      const stopRoot = forwardNatsRoot((m) => void child?.send(m));
      const stopCert = forwardNodeTls((m) => void child?.send(m));
      unforward = () => {
        stopRoot();
        stopCert();
      };
      // The child's own registry joins the agent's scrape (in-process, its metrics are in the agent's already).
      unexport?.();
      unexport = exportChildMetrics('messaging', child);
    },
    async stop() {
      unexport?.();
      unexport = undefined;
      unforward?.();
      unforward = undefined;
      await child?.stop();
      child = undefined;
    },
  };
}
