/**
 * Every role this agent can run, as loaders: a node loads a role's module (and what only that role
 * needs: the LXD client, the registry links, the hosted services) the first time it takes the
 * role, so a node's footprint follows its roles. The one place that knows which module implements
 * which role, used by the daemon's composition root (main.ts) and by `mammatus render`.
 */
import type { Argv, HostedService, Spawn } from '../core/contracts.js';
import type { ChildWiring } from '../core/child-service.js';
import type { RoleName } from '../core/members.js';
import type { NodeCredentials } from '../core/trust.js';
import type { Role } from '../roles/types.js';

/** The top-level config sections hosted services read. */
export type AgentSection = 'metadata' | 'messaging' | 'roles';

/** What the roles are built with. */
export interface RoleWiring {
  /** Builds the spawner of role daemons (on the first role that runs one). */
  readonly spawn: () => Promise<Spawn>;
  /** How to run `mammatus` itself (the gateway's metadata proxy runs as its child). */
  readonly mammatus?: Argv;
  /**
   * The current `metadata:` / `messaging:` sections and `roles:` (read at each start of a hosted
   * service; the CA's hosted services read `roles.controller.ca`).
   */
  readonly section?: (name: AgentSection) => unknown;
  /** Follow the instance registry (gateways, compute nodes); off for `render`, which only renders. */
  readonly registry?: boolean;
  /** This node's name and credentials, read when a role connects to NATS. */
  readonly node?: () => string;
  readonly credentials?: () => NodeCredentials | undefined;
  /**
   * `services.user` and `log.level` of the agent config (read at each start). With `mammatus`, the
   * tenant-facing services (metadata service, SQS/SNS API, metadata proxy) run as child processes
   * under this user; without it the controller's run in-process (tests, `render`).
   */
  readonly serviceUser?: () => string;
  readonly logLevel?: () => string;
  /** Serf's gossip key (undefined: not encrypted), for the hosts that join (agent/gossip-key.ts). */
  readonly gossipKey?: () => Promise<string | undefined>;
}

/** The loaders of the four roles, by the name the `role` tag uses. */
export function roleCatalog(w: RoleWiring): Readonly<Record<RoleName, () => Promise<Role>>> {
  return {
    async gateway() {
      const { buildGatewayRole } = await import('../roles/gateway/index.js');
      const feed = w.registry ? (await import('../src/registry/gateway-feed.js')).openInstanceFeed : undefined;
      const lb = w.registry ? (await import('../src/lb/feed.js')).openLbFeed : undefined;
      const health = w.registry ? (await import('../src/lb/health.js')).openLbHealthSink : undefined;
      return buildGatewayRole({
        spawn: await w.spawn(),
        ...(w.mammatus ? { mammatus: w.mammatus } : {}),
        ...(w.serviceUser ? { serviceUser: w.serviceUser } : {}),
        ...(w.logLevel ? { logLevel: w.logLevel } : {}),
        ...(feed ? { instanceFeed: (servers, onChange, log) => feed(servers, onChange, log, w.credentials?.()) } : {}),
        ...(lb ? { lbFeed: (servers, onChange, log) => lb(servers, onChange, log, { credentials: w.credentials?.() }) } : {}),
        ...(health ? { lbHealth: (servers, log) => health(servers, log, { node: w.node?.() ?? '', credentials: w.credentials?.() }) } : {}),
      });
    },
    async compute() {
      const { buildComputeRole } = await import('../roles/compute/index.js');
      if (!w.registry) return buildComputeRole({});
      const [{ openComputeRegistry: link }, { openAttachedVolumeFeed: volumes }] = await Promise.all([
        import('../src/registry/compute-link.js'),
        import('../src/registry/volume-feed.js'),
      ]);
      const identity = () => ({ node: w.node?.() ?? '', credentials: w.credentials?.() });
      return buildComputeRole({
        instanceFeed: (servers, onChange, log) => link(servers, onChange, log, identity()),
        volumeFeed: (servers, node, onChange, log) => volumes(servers, node, onChange, log, w.credentials?.()),
      });
    },
    async storage() {
      const { buildStorageRole } = await import('../roles/storage/index.js');
      const feed = w.registry ? (await import('../src/registry/volume-feed.js')).openVolumeFeed : undefined;
      return buildStorageRole(
        feed ? { volumeFeed: (servers, node, onChange, log) => feed(servers, node, onChange, log, w.credentials?.()) } : {},
      );
    },
    async controller() {
      const [
        { buildControllerRole },
        { metadataHostedService },
        { messagingHostedService },
        { rosterHostedService },
        { watchRoster },
        { registryWritesHostedService },
        { hostsHostedService },
        { caSignHostedService, nodeCertLifetime },
        { caFilesHostedService },
        { parseControllerConfig },
        { chooseBackend, findProgram },
      ] = await Promise.all([
        import('../roles/controller/index.js'),
        import('../src/metadata/hosted.js'),
        import('../src/messaging/hosted.js'),
        import('../src/trust/hosted.js'),
        import('../src/trust/roster.js'),
        import('../src/registry/hosted.js'),
        import('../src/hosts/hosted.js'),
        import('../src/ca/sign-service.js'),
        import('../src/ca/files-service.js'),
        import('../roles/controller/config.js'),
        import('../roles/controller/ca-launch.js'),
      ]);
      const section = w.section ?? (() => undefined);
      const child: ChildWiring | undefined =
        w.mammatus && w.serviceUser
          ? { spawn: w.spawn, mammatus: w.mammatus, user: w.serviceUser, level: w.logLevel ?? (() => 'info') }
          : undefined;
      // `roles.controller.ca` as the role resolves it (a bad one fails the role's own apply first),
      // parsed again only when the config was reloaded (the signing service asks at each request).
      let parsed: { raw: unknown; ca: ReturnType<typeof parseControllerConfig>['ca'] } | undefined;
      const ca = () => {
        const raw = ((section('roles') ?? {}) as { controller?: unknown }).controller;
        if (!parsed || parsed.raw !== raw || raw === undefined) parsed = { raw, ca: parseControllerConfig(raw).ca };
        return parsed.ca;
      };
      // Where a config that does not parse (the role reports it) must not stop a running service.
      const caIfValid = () => {
        try {
          return ca();
        } catch {
          return undefined;
        }
      };
      // The backend's system user (as ca-launch.ts picks it): the intermediate key's owner.
      const caUser = () => {
        const c = caIfValid();
        if (!c) return undefined;
        return c.user !== 'auto' ? c.user || undefined : chooseBackend(c, findProgram) === 'caddy' ? 'caddy' : 'step';
      };
      // The roster and the registry take the replicas the metadata section gives the registry.
      const replicas = () => ((section('metadata') ?? {}) as { registry_replicas?: number }).registry_replicas ?? 1;
      const services: HostedService[] = [
        rosterHostedService(() => w.credentials?.(), replicas),
        registryWritesHostedService(replicas),
        // Hosts' joins: in the agent, as admission signs with the authority's seed.
        hostsHostedService({
          credentials: () => w.credentials?.(),
          gossipKey: w.gossipKey ?? (() => Promise.resolve(undefined)),
          replicas,
        }),
        // Node certificates (issue 20): in the agent, as it reads the intermediate's key.
        caSignHostedService({
          credentials: () => w.credentials?.(),
          lifetimeMs: () => nodeCertLifetime(caIfValid()?.node_cert_lifetime),
        }),
        // The CA files the backend reads, kept in step with the buckets.
        caFilesHostedService({
          credentials: () => w.credentials?.(),
          paths: () => (ca().enabled ? ca().paths : undefined),
          owner: caUser,
        }),
        metadataHostedService(() => section('metadata'), child),
        messagingHostedService(() => section('messaging'), child),
      ];
      return buildControllerRole({ spawn: await w.spawn(), services, ...(w.registry ? { roster: watchRoster } : {}) });
    },
  };
}
