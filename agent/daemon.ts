/**
 * The mammatus agent: connects to the local serf agent, keeps a membership cache, runs the role
 * plugins named by this node's `role` tag, and feeds Serf events and queries to the dispatcher.
 * `createAgent` has no side effects; `start()` opens the Serf session last, so no event arrives
 * before its handler exists. `stop()` is idempotent.
 */
import type { LoadedConfig } from './config/load.js';
import type { AgentConfig } from './config/schema.js';
import { parseDuration } from '../core/duration.js';
import { setLogLevel } from '../core/logger.js';
import { EventDedupe } from './dispatch/dedupe.js';
import { DispatchSavedState } from './dispatch/saved-state.js';
import { SignatureGate } from './dispatch/signatures.js';
import { Dispatcher, type QueryAnswer } from './dispatch/dispatcher.js';
import { RoleScheduler } from '../roles/scheduler.js';
import { SerfSession } from './serf/session.js';
import type { SerfClient, MemberEvent } from './serf/client.js';
import { type AgentView } from './types.js';
import { MEMBER_EVENT_TYPES, type Logger, type Member } from '../core/contracts.js';
import { registerBuiltinHandlers } from '../handlers/index.js';
import { parseRoleTag } from '../core/members.js';
import type { RoleSource } from '../roles/types.js';
import type { FileOps, Run } from '../core/contracts.js';
import { AGENT_TAG, ROLE_TAG } from '../core/members.js';
import { decideRoles, trustStatus } from './trust-policy.js';
import { roleTagsWanted, trustTagWanted } from './self-tags.js';
import { detach } from '../core/errors.js';
import { annotateTrust, type NodeCredentials } from '../core/trust.js';
import { NodeCertificates } from './certs.js';
import { certServers, roleSettings, tlsPaths } from './certs-plan.js';
import { natsRootChanged, useNatsRootFile } from '../core/nats.js';
import { nodeTlsChanged, useNodeTlsFiles } from '../core/node-tls.js';
import { MembersPoll } from './members-poll.js';
import { MetricsRuntime } from './metrics-runtime.js';

/** Everything the agent needs from outside; tests pass their own. */
export interface AgentDeps {
  readonly loaded: LoadedConfig;
  /** Reads the config again with the same command-line options (SIGHUP, file change). */
  readonly reloadConfig: () => Promise<LoadedConfig>;
  readonly log: Logger;
  readonly run: Run;
  readonly files: FileOps;
  /** Every role this agent can run; a function loads the role's module when the node first takes it. */
  readonly roles: Readonly<Record<string, RoleSource>>;
  readonly version: string;
  /** Extra handlers (tests, later roles), registered after the built-in ones. */
  readonly registerHandlers?: (dispatcher: Dispatcher, view: AgentView) => void;
  /** Called once the agent is ready (roles applied, `mammatus` tag set). */
  readonly onReady?: () => void;
  /** This node's credentials as read at start (core/trust.ts); absent: not admitted. */
  readonly credentials?: NodeCredentials;
  /** Reads the credentials again (at each config reload); a failure keeps the last ones. */
  readonly loadCredentials?: (stateDir: string) => Promise<NodeCredentials | undefined>;
}

/** A running (or runnable) agent. */
export interface Agent {
  readonly view: AgentView;
  readonly dispatcher: Dispatcher;
  config(): AgentConfig;
  members(): readonly Member[];
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Reloads the config; false (and the old config kept) when the new one is invalid. */
  reload(): Promise<boolean>;
  /** This node's TLS certificate keeper (issue 20): consumers of the files listen with `onChange`. */
  readonly certs: NodeCertificates;
}

/** Builds an agent; nothing runs until `start()`. */
export function createAgent(deps: AgentDeps): Agent {
  let loaded = deps.loaded;
  const log = deps.log;
  const startedAt = Date.now();
  let nodeName = '';
  let selfTag: string | undefined;
  let ready = false;
  let stopping: Promise<void> | undefined;
  const members = new Map<string, Member>();
  const dedupe = new EventDedupe();
  let session: SerfSession | undefined;
  let saveTimer: NodeJS.Timeout | undefined;
  let reloading: Promise<boolean> = Promise.resolve(true);
  let credentials = deps.credentials;
  /** Serf's own answer: is gossip encrypted? (undefined until connected) */
  let gossipEncrypted: boolean | undefined;
  const trustCache = new Map<string, readonly string[]>();
  /** Members with their trust checked against the authority (core/trust.ts). */
  const trustedMembers = () => annotateTrust([...members.values()], credentials?.authority, trustCache);

  const timings = (c: AgentConfig) => ({
    handlerTimeoutMs: parseDuration(c.dispatch.handler_timeout),
    slowHandlerMs: parseDuration(c.dispatch.slow_handler),
    queryTimeoutMs: parseDuration(c.dispatch.query_timeout),
  });
  // Operator signatures are checked against the current config's keys (a reload changes them).
  const signatures = new SignatureGate(
    () => loaded.operators,
    Date.now,
    () => background(saved.saveSignatures(), 'saving accepted signatures failed'),
  );
  const saved = new DispatchSavedState({ files: deps.files, stateDir: () => loaded.config.state_dir, dedupe, signatures, log });
  const dispatcher = new Dispatcher({
    log: log.child({ component: 'dispatch' }),
    node: () => nodeName,
    dedupe,
    signatures,
    ...timings(loaded.config),
  });
  const scheduler = new RoleScheduler({
    roles: deps.roles,
    // A role's queries are answered while the role runs here (the dispatcher streams every query).
    queries: {
      add: (name, answer) => dispatcher.on(`query:${name}`, (q) => answer(q.payload) as QueryAnswer | Promise<QueryAnswer>),
      remove: (name) => dispatcher.off(`query:${name}`),
    },
    run: deps.run,
    files: deps.files,
    log,
    stateDir: () => loaded.config.state_dir,
    node: () => nodeName,
    members: trustedMembers,
    roleConfig: (r) => roleSettings(loaded.config, r),
    credentials: () => credentials,
  });

  const certs = new NodeCertificates({
    files: deps.files,
    stateDir: () => loaded.config.state_dir,
    node: () => nodeName,
    credentials: () => credentials,
    members: trustedMembers,
    servers: () => certServers(loaded.config.roles, credentials, trustedMembers()),
    log: log.child({ component: 'certs' }),
  });
  // Every NATS client of this process verifies its server against the node's root once it has one
  // (core/nats.ts); after new files, the controller's nats-server takes them up (roles/controller/tls.ts).
  useNatsRootFile(tlsPaths(loaded.config.state_dir).ca);
  // And the HTTPS listeners of this process (and its service children) serve the node certificate.
  useNodeTlsFiles(tlsPaths(loaded.config.state_dir));
  certs.onChange(() => {
    // The service children first: they must hold the root before their server turns TLS on.
    natsRootChanged();
    nodeTlsChanged();
    background(scheduler.reconcile(['controller'], 'node certificate renewed'), 'reloading NATS TLS failed');
  });

  const view: AgentView = {
    version: deps.version,
    node: () => nodeName,
    uptimeSeconds: () => Math.floor((Date.now() - startedAt) / 1000),
    roles: () => scheduler.roles(),
    roleStatus: () => scheduler.statuses(),
    reconcile: (role) => scheduler.reconcile(role ? [role] : undefined, 'mammatus.reconcile'),
    trust: () => trustStatus(loaded.config, credentials, gossipEncrypted),
    verdict: (name, id) => signatures.verdict(name, id),
    tls: () => certs.status(),
  };

  // Metrics (docs/monitoring.md): the local listener, and this node's answers to the controllers.
  const metrics = new MetricsRuntime({
    config: () => loaded.config.metrics,
    view,
    members: trustedMembers,
    stateDir: () => loaded.config.state_dir,
    credentials: () => credentials,
    servers: () => certServers(loaded.config.roles, credentials, trustedMembers()),
    log: log.child({ component: 'metrics' }),
    files: deps.files,
    run: deps.run,
  });

  registerBuiltinHandlers(dispatcher, view);
  for (const type of MEMBER_EVENT_TYPES) dispatcher.on(type, (ev) => onMemberEvent(ev as MemberEvent));
  deps.registerHandlers?.(dispatcher, view);

  /** Applies the `role` tag of this node, if it changed (member-update repeats, serf#555). */
  function syncSelfRoles(): Promise<void> {
    const self = members.get(nodeName);
    const tag = self?.tags[ROLE_TAG] ?? '';
    const parsed = parseRoleTag(tag);
    const { roles, refused } = decideRoles(parsed, loaded.config, credentials, gossipEncrypted);
    const key = JSON.stringify([tag, roles, refused]);
    if (key === selfTag) return Promise.resolve();
    selfTag = key;
    log.info({ roles, unknown: parsed.unknown, refused }, 'roles from the role tag');
    // Once ready, tags a role wants (the compute node's initiator) go out after its apply; before
    // that, markReady publishes them with the agent's own.
    return scheduler.setRoles(roles, parsed.unknown, refused).then(async () => {
      if (ready && session?.connected) await publishTags(await session.adminClient(), roleTags());
    });
  }

  /** Work nobody waits for: its failure is logged, never an unhandled rejection. */
  const background = (work: Promise<unknown>, what: string) => detach(work, (err) => log.error({ err }, what));

  function onMemberEvent(ev: MemberEvent): void {
    for (const m of ev.members) {
      if (ev.type === 'member-reap') members.delete(m.name);
      else members.set(m.name, m);
    }
    // Role work is queued in the scheduler, not awaited: a long apply must not hold up the
    // event queue (and time out this handler).
    if (ev.members.some((m) => m.name === nodeName)) background(syncSelfRoles(), 'applying the role tag failed');
    background(scheduler.onMemberEvent(ev.type), 'reconciling after a member event failed');
  }

  async function onConnected(admin: SerfClient): Promise<void> {
    const stats = await admin.stats();
    nodeName = stats.agent?.name ?? nodeName;
    const encrypted = (stats as { serf?: { encrypted?: string } }).serf?.encrypted;
    gossipEncrypted = encrypted === undefined ? undefined : encrypted === 'true';
    members.clear();
    for (const m of await admin.members()) members.set(m.name, m);
    selfTag = undefined; // re-read: the tag may have changed while we were away
    log.info({ node: nodeName, members: members.size }, 'connected to serf');
    const reconnected = ready;
    // A controller's proof of admission goes out before any role applies: a second controller's
    // JetStream waits for the first to route to it, which the first does only for a member that
    // proves it. Other nodes publish it with the `mammatus` tag once ready: one Serf broadcast
    // (each `serf tags` returns only after its broadcast, ~0.6 s) instead of two in a row.
    if (credentials?.roles.includes('controller')) await publishTags(admin, trustTag());
    // Roles apply in the background so the event stream starts flowing at once.
    background(
      syncSelfRoles()
        .then(() => (reconnected ? scheduler.onMembershipResync() : undefined))
        .then(() => markReady(admin)),
      'applying roles after connecting to serf failed',
    );
  }

  const membersPoll = new MembersPoll({
    wanted: () => !stopping && Boolean(session?.connected) && scheduler.hasMembershipWatchers(),
    fetch: async () => {
      if (!session) throw new Error('no serf session');
      return (await session.adminClient()).members();
    },
    current: () => members.values(),
    changed: (fresh) => {
      members.clear();
      for (const m of fresh) members.set(m.name, m);
      background(syncSelfRoles(), 'applying the role tag failed');
      background(scheduler.onMembershipResync('members poll'), 'reconciling after a membership change failed');
    },
    log,
  });

  async function markReady(admin: SerfClient): Promise<void> {
    const agentTag: Record<string, string> = members.get(nodeName)?.tags[AGENT_TAG] !== deps.version ? { [AGENT_TAG]: deps.version } : {};
    await publishTags(admin, { ...roleTags(), ...trustTag(), ...agentTag });
    if (!ready) {
      ready = true;
      log.info({ node: nodeName, roles: scheduler.roles(), version: deps.version }, 'agent ready');
      deps.onReady?.();
    }
  }

  const selfTags = () => members.get(nodeName)?.tags ?? {};
  const trustTag = () => trustTagWanted(selfTags(), nodeName, credentials, log);
  const roleTags = () => roleTagsWanted(selfTags(), scheduler.tags());

  /** Sets `tags` on this node's Serf in one call (none when empty); a failure is logged. */
  async function publishTags(admin: SerfClient, tags: Record<string, string>): Promise<void> {
    if (Object.keys(tags).length === 0) return;
    await admin.tags(tags).catch((err: unknown) => log.warn({ err, tags: Object.keys(tags) }, 'could not set tags'));
  }

  function buildSession(c: AgentConfig): SerfSession {
    return new SerfSession({
      addr: c.serf.rpc_addr,
      authKey: c.serf.rpc_auth || undefined,
      log: log.child({ component: 'serf' }),
      filter: dispatcher.streamFilter(),
      onEvent: (ev) => dispatcher.dispatch(ev),
      onConnected,
    });
  }

  return {
    view,
    dispatcher,
    config: () => loaded.config,
    members: () => [...members.values()],
    certs,
    async start() {
      await saved.restore();
      // Watermarks advance as handlers finish; persist them at most once a second.
      saveTimer = setInterval(() => background(saved.saveWatermarks(), 'saving event watermarks failed'), 1000);
      saveTimer.unref();
      session = buildSession(loaded.config);
      membersPoll.start(parseDuration(loaded.config.serf.members_poll));
      log.info({ rpc_addr: loaded.config.serf.rpc_addr, filter: dispatcher.streamFilter() }, 'connecting to serf');
      // The root the credentials carry is on disk before any NATS connection (roles start once
      // Serf answers): every connection of this node verifies its server, the first one too.
      await certs.installRoot();
      // It waits for the node's name (set once Serf answers) and credentials by itself.
      certs.start();
      metrics.start();
      await session.start();
    },
    reload() {
      // One reload at a time, and none once stopping: each swaps the session and re-applies roles.
      reloading = reloading.then(async () => {
        if (stopping) return false;
        let next: LoadedConfig;
        try {
          next = await deps.reloadConfig();
        } catch (err) {
          // A SettingsError names the file and key, never the value, and carries no cause.
          log.error({ err }, 'config reload failed; keeping the last good config');
          return false;
        }
        const prev = loaded.config;
        loaded = next;
        if (deps.loadCredentials) {
          try {
            credentials = await deps.loadCredentials(next.config.state_dir);
          } catch (err) {
            log.error({ err }, 'credentials unreadable; keeping the last ones');
          }
          if (session?.connected) await publishTags(await session.adminClient(), trustTag());
          // Admitted again (a new root, or one the old credentials lacked): services take it up.
          if (await certs.installRoot()) natsRootChanged();
        }
        await syncSelfRoles();
        setLogLevel(log, next.config.log.level);
        dispatcher.setTimings(timings(next.config));
        membersPoll.start(parseDuration(next.config.serf.members_poll));
        log.info({ files: next.files }, 'config reloaded');
        if (prev.serf.rpc_addr !== next.config.serf.rpc_addr || prev.serf.rpc_auth !== next.config.serf.rpc_auth) {
          await session?.stop();
          session = buildSession(next.config);
          // Connecting may take long (serf down, wrong key); a later stop() ends the wait quietly.
          session.start().catch((err: unknown) => log.debug({ err }, 'serf session ended before it connected'));
        }
        await scheduler.reconcile(undefined, 'config change');
        await scheduler.configReloaded();
        certs.kick();
        metrics.check();
        return true;
      });
      return reloading;
    },
    stop() {
      stopping ??= (async () => {
        log.info('agent stopping');
        clearInterval(saveTimer);
        membersPoll.stop();
        certs.stop();
        await reloading;
        await metrics.stop();
        if (session?.connected) {
          // Nobody should read the tag as "agent running" once we are gone.
          const admin = await session.adminClient();
          await Promise.race([admin.tags({}, [AGENT_TAG]).catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
        }
        await session?.stop();
        await Promise.race([dispatcher.idle(), new Promise((r) => setTimeout(r, 5000))]);
        await scheduler.stopAll();
        await saved.saveWatermarks();
        await saved.saveSignatures();
        log.info('agent stopped');
      })();
      return stopping;
    },
  };
}
