/**
 * `mammatus service run <name>` (hidden): the child side of core/child-service.ts. The agent starts
 * it as an unprivileged user with an IPC channel, and sends its settings and secrets as the first
 * message; it starts the service, answers `ready` (or `error`, then exits 1), applies later messages
 * (membership) and stops on SIGTERM/SIGINT or when the agent goes away (the channel closes).
 */
import { NATS_CA_MESSAGE, takeNatsRootMessage, useNatsRoot } from '../../core/nats.js';
import { NODE_TLS_MESSAGE, isNodeTlsPem, nodeTlsChanged, useNodeTls } from '../../core/node-tls.js';
import type { ChildInit, ChildReport } from '../../core/child-service.js';
import type { Logger } from '../../core/contracts.js';
import { errorCode, errorMessage } from '../../core/errors.js';
import { buildLogger } from '../../core/logger.js';
import { exposition } from '../../core/metrics.js';
import { untilSignal } from '../../core/signals.js';
import { UsageError } from './common.js';
import type { VendorDataTemplates } from '../../src/metadata/vendor-data-templates.js';

/** How long a stop may take before the process exits anyway (below the agent's 10 s SIGKILL). */
const STOP_TIMEOUT_MS = 8000;

/** The services this command runs. */
export const CHILD_SERVICES = ['metadata', 'messaging', 'metadata-proxy', 'boot-http'] as const;

/** A started service, as the command holds it. */
interface Started {
  readonly url?: string;
  stop(): Promise<void>;
}

/** What a starter gets: the init message, a logger, a way to report, and the latest controllers. */
interface StartArgs {
  readonly init: ChildInit;
  readonly log: Logger;
  readonly report: (r: ChildReport) => Promise<void>;
  readonly controllers: () => readonly string[];
  /** The controllers whose metrics store is InfluxDB (core/telegraf.ts). */
  readonly influxdb: () => readonly string[];
}

const credentialsOf = (init: ChildInit) => (typeof init.seed === 'string' ? { seed: init.seed } : undefined);
const natsOf = (init: ChildInit) => (typeof init.natsUrl === 'string' ? { nats: init.natsUrl } : {});

const STARTERS: Record<(typeof CHILD_SERVICES)[number], (a: StartArgs) => Promise<Started>> = {
  async metadata({ init, log, controllers, influxdb }) {
    const [{ parseMetadataSettings }, { startMetadataService }, { buildVendorDataSource }, { caRootCache, natsCaFetch }] =
      await Promise.all([
        import('../../src/metadata/config.js'),
        import('../../src/metadata/service.js'),
        import('../../src/metadata/vendor-source.js'),
        import('../../src/metadata/vendor-data-root.js'),
      ]);
    // The agent put the secret itself in the section: no file is read here.
    const settings = parseMetadataSettings(init.section);
    const vaultToken = typeof init.vaultToken === 'string' ? { vaultToken: init.vaultToken } : {};
    const templates = init.templates ? { templates: init.templates as VendorDataTemplates } : {};
    // The cluster CA's root for vendor-data (issue 20), read from mammatus-ca with the node's seed.
    const caRoot =
      typeof init.natsUrl === 'string' ? { caRoot: caRootCache({ fetch: natsCaFetch(init.natsUrl, credentialsOf(init)), log }) } : {};
    const vendorData = await buildVendorDataSource({ settings, controllers, influxdb, log, ...vaultToken, ...templates, ...caRoot });
    return startMetadataService({ settings, ...natsOf(init), vendorData, log, credentials: credentialsOf(init) });
  },

  async messaging({ init, log, report }) {
    const [{ parseMessagingSettings }, { startMessagingService }] = await Promise.all([
      import('../../src/messaging/settings.js'),
      import('../../src/messaging/service.js'),
    ]);
    const parsed = parseMessagingSettings(init.section);
    const signing = init.signing as { key: string; cert: string } | undefined;
    const settings = signing
      ? { ...parsed, engine: { ...parsed.engine, sns: { ...parsed.engine.sns, signingKeyPem: signing.key, signingCertPem: signing.cert } } }
      : parsed;
    // As in-process before: ready at once, listening when JetStream can hold the streams (a second
    // controller of three must not hold up its agent), retried every 5 s until then.
    let running: Started | undefined;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let attempt: Promise<void> | undefined;
    const tryStart = (): void => {
      attempt = startMessagingService({ settings, ...natsOf(init), log, credentials: credentialsOf(init) }).then(
        async (service) => {
          if (stopped) return void (await service.stop());
          running = service;
          await report({ type: 'listening', url: service.url });
        },
        (err: unknown) => {
          if (stopped) return;
          log.warn({ err: errorMessage(err), retry_ms: 5000 }, 'SQS/SNS API not started yet; retrying');
          timer = setTimeout(tryStart, 5000);
        },
      );
    };
    tryStart();
    return {
      async stop() {
        stopped = true;
        clearTimeout(timer);
        await attempt;
        await running?.stop();
      },
    };
  },

  async ['metadata-proxy']({ init, log }) {
    const [{ parseMetadataSettings }, { startMetadataProxy }, { leaseFileLookup }] = await Promise.all([
      import('../../src/metadata/config.js'),
      import('../../src/metadata/service.js'),
      import('../../roles/gateway/leases.js'),
    ]);
    const settings = parseMetadataSettings(init.section);
    return startMetadataProxy({ settings, macOf: leaseFileLookup(settings.proxy.leasesFile), log });
  },

  async ['boot-http']({ init, log }) {
    const [{ parseBootSection }, { startStaticServer }] = await Promise.all([
      import('../../roles/gateway/boot-server.js'),
      import('../../src/boot/static-server.js'),
    ]);
    const { host, port, files, dirs } = parseBootSection(init.section);
    return startStaticServer({ host, port, routes: { files, dirs }, log });
  },
};

/** The error's message, with what to do when it is the unprivileged user's lack of a low port. */
function explain(err: unknown): string {
  const message = errorMessage(err);
  if (errorCode(err) !== 'EACCES' || !/listen/.test(message)) return message;
  return `${message}: the service runs as an unprivileged user (services.user) and cannot listen on a port below 1024; use a higher port (docs/security.md)`;
}

/** The first message on the IPC channel, or a rejection after `ms`. */
function firstMessage(ms: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no settings from the agent within ${ms / 1000}s`)), ms);
    process.once('message', (m: unknown) => {
      clearTimeout(timer);
      resolve(m);
    });
  });
}

/** Runs the service `name` until a stop signal or the agent's channel closes; resolves with the exit code. */
export async function serviceRunCommand(name: string): Promise<number> {
  const send = process.send?.bind(process);
  if (!send) throw new UsageError('mammatus service run is started by the agent, which sends its settings over an IPC channel');
  if (!(CHILD_SERVICES as readonly string[]).includes(name))
    throw new UsageError(`unknown service ${JSON.stringify(name)} (known: ${CHILD_SERVICES.join(', ')})`);
  // Resolves once the message is written: the process may exit right after.
  const report = (r: ChildReport) => new Promise<void>((resolve) => void send(r, undefined, undefined, () => resolve()));
  const init = (await firstMessage(30_000)) as ChildInit;
  if (init?.type !== 'init' || init.service !== name) throw new Error(`expected the settings of ${name} first`);
  const log = buildLogger(init.level).child({ component: name });
  // The cluster root, read by the agent (the child may not read <state_dir>): NATS over verified TLS.
  useNatsRoot(typeof init.nats_ca === 'string' ? init.nats_ca : undefined);
  // The node certificate for its HTTPS listener (the key is root's: the agent read it).
  useNodeTls(isNodeTlsPem(init.node_tls) ? init.node_tls : undefined);
  let controllers: readonly string[] = Array.isArray(init.controllers) ? (init.controllers as string[]) : [];
  let influxdb: readonly string[] = Array.isArray(init.influxdb) ? (init.influxdb as string[]) : [];
  process.on(
    'message',
    (m: { type?: string; id?: unknown; controllers?: unknown; influxdb?: unknown; nats_ca?: unknown; node_tls?: unknown }) => {
      // The agent's scrape: this process's registry (the service's metrics; no process_* ones, which are the agent's).
      if (m?.type === 'metrics' && typeof m.id === 'number') {
        const id = m.id;
        // Within the agent's wait for it (2.5 s, core/child-service.ts), so a slow reader costs its values, not the whole text.
        void exposition(2000)
          .then((text) => report({ type: 'metrics', id, text }))
          .catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'metrics not read or not sent'));
      }
      if (m?.type === NODE_TLS_MESSAGE && isNodeTlsPem(m.node_tls)) {
        useNodeTls(m.node_tls);
        nodeTlsChanged();
      }
      if (m?.type === 'members' && Array.isArray(m.controllers)) controllers = m.controllers as string[];
      if (m?.type === 'members' && Array.isArray(m.influxdb)) influxdb = m.influxdb as string[];
      // Used from the connection's next reconnect on (core/nats.ts followRoot).
      if (m?.type === NATS_CA_MESSAGE) takeNatsRootMessage(m.nats_ca);
    },
  );
  // The agent gone (crashed, killed) closes the channel: a child must not outlive it.
  const orphaned = new Promise<string>((resolve) => process.once('disconnect', () => resolve('agent gone')));
  const stopSignal = untilSignal();
  let started: Started;
  try {
    started = await STARTERS[name as (typeof CHILD_SERVICES)[number]]({
      init,
      log,
      report,
      controllers: () => controllers,
      influxdb: () => influxdb,
    });
  } catch (err) {
    await report({ type: 'error', message: explain(err) });
    log.error({ err: errorMessage(err) }, `${name} failed to start`);
    process.disconnect?.();
    return 1;
  }
  await report({ type: 'ready', ...(started.url ? { url: started.url } : {}) });
  const why = await Promise.race([stopSignal, orphaned]);
  log.info({ why }, 'stopping');
  // Bounded: a stop can wait on NATS that never answered (the agent would SIGKILL after 10 s; an
  // orphan has no one to do that).
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)));
  await Promise.race([started.stop().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'stop failed')), late]);
  clearTimeout(timer);
  if (process.connected) process.disconnect();
  return 0;
}
