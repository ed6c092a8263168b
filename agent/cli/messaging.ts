/**
 * `mammatus messaging serve`: the SQS/SNS API on its own (development, tests, or a host outside the
 * agent). Reads the `messaging:` section of the agent config and runs until SIGTERM/SIGINT.
 */
import { isHostPort } from '../../core/net.js';
import { loadConfig } from '../config/load.js';
import { buildLogger } from '../../core/logger.js';
import { startMessagingService } from '../../src/messaging/service.js';
import { parseMessagingSettings } from '../../src/messaging/settings.js';
import { UsageError, type CliIo, type GlobalOptions } from './common.js';
import { cliCredentials } from './credentials.js';
import { untilSignal } from '../../core/signals.js';

/** Flags of `messaging serve`. */
export interface MessagingServeOptions {
  nats?: string;
  listen?: string;
  config?: string;
}

/** `messaging serve`: runs the API until a stop signal. */
export async function messagingServeCommand(
  g: GlobalOptions,
  opts: MessagingServeOptions,
  io: CliIo,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  // Port 0 (any free port) is fine for a development server.
  if (opts.listen !== undefined && !isHostPort(opts.listen.replace(/:0$/, ':1')))
    throw new UsageError(`--listen must be host:port, got "${opts.listen}"`);
  if (opts.nats !== undefined && !opts.nats.split(',').every((u) => /^(nats|tls):\/\/[^\s/]+$/.test(u.trim()))) {
    throw new UsageError(`--nats must be nats://host:port, comma-separated, got "${opts.nats}"`);
  }
  const loaded = await loadConfig({ path: opts.config, env });
  const settings = parseMessagingSettings(loaded.config.messaging);
  const log = buildLogger(loaded.config.log.level).child({ component: 'messaging' });
  const service = await startMessagingService({
    settings,
    ...(opts.nats ? { nats: opts.nats } : {}),
    ...(opts.listen ? { listen: opts.listen } : {}),
    log,
    credentials: await cliCredentials(g),
  });
  io.err(`messaging API (SQS/SNS) on ${service.url}`);
  const signal = await untilSignal();
  log.info({ signal }, 'stopping');
  await service.stop();
  return 0;
}
