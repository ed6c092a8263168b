/**
 * Starts real `nats-server -js` processes on free loopback ports, for the integration tests, the
 * benchmarks and the local cluster. Each server is stopped by its PID.
 *
 * Authorization is on, as on a controller: the server lists the nkey users of a test cluster
 * authority (`TestTrust`), by default just `admin` with a controller's permissions (everything);
 * `admit` adds a node with the permissions of its roles and reloads the server (SIGHUP), `revoke`
 * removes one. Routes authenticate with the authority's route secret.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { admittedNode, createAuthority, mintCredentials, routePassword, type NodeCredentials } from '../../core/trust.js';
import type { RoleName } from '../../core/members.js';
import { natsUsers } from '../../roles/controller/permissions.js';
import { writeFileAtomic } from '../../core/files.js';
import { findOnPath, trackDaemon, untilReady } from './daemon.js';
import { freePort, waitForPort } from './ports.js';
import { withNatsTls, type ControllerTlsConfig } from '../../roles/controller/tls.js';

/** What to start. */
export interface NatsServerSpec {
  /** Server name (unique in a cluster). */
  readonly name: string;
  /** Directory for the config, the log and the JetStream store. */
  readonly dir: string;
  /** Reuse ports (a restart of the same server keeps its store and address). */
  readonly port?: number;
  readonly clusterPort?: number;
  /** Cluster routes (`nats-route://127.0.0.1:PORT`); with them the server joins cluster `clusterName`. */
  readonly routes?: readonly string[];
  readonly clusterName?: string;
  /** Largest message the server accepts; 2 MiB by default (SQS messages reach 1 MiB). */
  readonly maxPayload?: number;
  /** The HTTP monitor (`/varz`, `/jsz`, `/healthz`) on 127.0.0.1 at this port; none by default. */
  readonly monitorPort?: number;
  /** Authorization on (default): anonymous clients are refused. Off only for benchmarks that measure its cost. */
  readonly auth?: boolean;
  /** The cluster authority whose admitted nodes are the users (shared by a cluster's servers); `sharedTrust()` by default. */
  readonly trust?: TestTrust;
  /** TLS on the client port and the routes, as a controller renders it (roles/controller/tls.ts). */
  readonly tls?: ControllerTlsConfig;
}

let shared: TestTrust | undefined;

/** The authority of every server this process starts without one: its `admin` works on all of them. */
export function sharedTrust(): TestTrust {
  return (shared ??= new TestTrust());
}

/** A test cluster's authority and its admitted nodes (the roster a controller would render). */
export class TestTrust {
  readonly authoritySeed = createAuthority();
  private readonly nodes = new Map<string, NodeCredentials>();
  /** A controller's credentials: every subject. What tests and benchmarks connect with by default. */
  readonly admin: NodeCredentials;

  constructor() {
    this.admin = this.mint('admin', ['controller']);
  }

  /** Mints credentials for `name` with `roles` (not yet known to any server: `NatsServer.admit`). */
  mint(name: string, roles: readonly RoleName[]): NodeCredentials {
    const creds = mintCredentials(this.authoritySeed, name, roles, new Date());
    this.nodes.set(name, creds);
    return creds;
  }

  /** Lists credentials minted elsewhere (a host that joined keeps its own seed) as a user at the next render. */
  enter(creds: NodeCredentials): void {
    this.nodes.set(creds.node, creds);
  }

  /** Forgets `name` (its server user goes at the next render). */
  forget(name: string): void {
    this.nodes.delete(name);
  }

  /** The `authorization` block of every server of the cluster. */
  authorization(): { users: ReturnType<typeof natsUsers> } {
    return { users: natsUsers(admittedNode(this.admin), [...this.nodes.values()].map(admittedNode)) };
  }

  /** The route user and password every server of the cluster shares. */
  routeAuth(): { user: string; password: string } {
    return { user: 'mammatus-route', password: routePassword(this.authoritySeed) };
  }

  /** Writes credentials to `file` (0600), as `node admit --out` does. */
  async writeCredentials(creds: NodeCredentials, file: string): Promise<string> {
    await writeFileAtomic(file, JSON.stringify(creds), 0o600);
    return file;
  }
}

/** A running nats-server. */
export interface NatsServer extends AsyncDisposable {
  readonly spec: NatsServerSpec;
  readonly port: number;
  readonly clusterPort: number;
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly process: ChildProcess;
  readonly logFile: string;
  /** The authority whose nodes are its users. */
  readonly trust: TestTrust;
  /** The `admin` credentials (a controller's permissions), and a file holding them (0600). */
  readonly credentials: NodeCredentials;
  readonly credentialsFile: string;
  /** Admits a node with `roles` (a user with their permissions), reloads, returns its credentials. */
  admit(name: string, roles: readonly RoleName[]): Promise<NodeCredentials>;
  /** Removes a node's user and reloads (SIGHUP). */
  revoke(name: string): Promise<void>;
  /** Renders the users again and reloads (after another server of the cluster admitted a node). */
  reload(): Promise<void>;
  /** SIGTERM (lame duck is not needed in tests) and wait for exit; SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (a crash, as clients see it). */
  kill(): Promise<void>;
}

/** The `nats-server` binary: on PATH, or in the sbin dir Debian puts it in (not on a user's PATH). */
function natsServerBinary(): string | undefined {
  return findOnPath('nats-server', ['/usr/sbin']);
}

/** Is the `nats-server` binary installed? */
export function natsServerAvailable(): boolean {
  return natsServerBinary() !== undefined;
}

/** Renders the nats-server config for `spec` (NATS's own config syntax; JSON is a subset of it). */
function renderConfig(spec: NatsServerSpec, trust: TestTrust, port: number, clusterPort: number): string {
  const conf: Record<string, unknown> = {
    server_name: spec.name,
    host: '127.0.0.1',
    port,
    max_payload: spec.maxPayload ?? 2 * 1024 * 1024,
    jetstream: { store_dir: path.join(spec.dir, 'jetstream'), max_memory_store: 256 * 1024 * 1024, max_file_store: 1024 * 1024 * 1024 },
    ...(spec.auth === false ? {} : { authorization: trust.authorization() }),
    ...(spec.monitorPort ? { http: `127.0.0.1:${spec.monitorPort}` } : {}),
  };
  if (spec.routes) {
    const auth = trust.routeAuth();
    const routes = spec.routes.map((r) => r.replace('://', `://${auth.user}:${auth.password}@`));
    conf.cluster = { name: spec.clusterName ?? 'mammatus', host: '127.0.0.1', port: clusterPort, authorization: auth, routes };
  }
  return JSON.stringify(withNatsTls(conf, spec.tls), null, 2);
}

/**
 * Starts one server and waits until its client port accepts connections. A port picked here that
 * another process took meanwhile (`freePort` can only say it was free) is picked again, twice at most.
 */
export async function startNatsServer(spec: NatsServerSpec): Promise<NatsServer> {
  mkdirSync(spec.dir, { recursive: true });
  let port = spec.port ?? (await freePort());
  let clusterPort = spec.clusterPort ?? (await freePort());
  const confPath = path.join(spec.dir, 'nats.conf');
  const trust = spec.trust ?? sharedTrust();
  const credentialsFile = await trust.writeCredentials(trust.admin, path.join(spec.dir, 'admin.creds.json'));
  const reload = async (): Promise<void> => {
    writeFileSync(confPath, renderConfig(spec, trust, port, clusterPort), { mode: 0o600 });
    child.kill('SIGHUP');
    // nats-server applies a reload in well under a millisecond on loopback; give it a moment.
    await new Promise((r) => setTimeout(r, 100));
  };
  const logFile = path.join(spec.dir, 'nats.log');
  const bin = natsServerBinary() ?? 'nats-server';
  let child: ChildProcess;
  let daemon: ReturnType<typeof trackDaemon>;
  for (let attempt = 1; ; attempt += 1) {
    writeFileSync(confPath, renderConfig(spec, trust, port, clusterPort), { mode: 0o600 });
    const out = openSync(logFile, 'a');
    child = spawn(bin, ['-c', confPath], { stdio: ['ignore', out, out] });
    closeSync(out);
    daemon = trackDaemon(child);
    try {
      await untilReady(daemon, waitForPort(port), `nats-server ${spec.name}`, logFile);
      break;
    } catch (err) {
      const ours = spec.port === undefined || spec.clusterPort === undefined;
      if (attempt >= 3 || !ours || !/address already in use/.test(readFileSync(logFile, 'utf8'))) throw err;
      await daemon.stop('SIGKILL');
      port = spec.port ?? (await freePort());
      clusterPort = spec.clusterPort ?? (await freePort());
    }
  }
  return {
    /** Stops it when a test's `await using` scope ends. */
    [Symbol.asyncDispose](this: NatsServer) {
      return this.stop();
    },
    // With its trust: a restart from `spec` keeps the same users.
    spec: { ...spec, trust },
    port,
    clusterPort,
    url: `nats://127.0.0.1:${port}`,
    process: child,
    logFile,
    trust,
    credentials: trust.admin,
    credentialsFile,
    async admit(name, roles) {
      const creds = trust.mint(name, roles);
      await reload();
      return creds;
    },
    async revoke(name) {
      trust.forget(name);
      await reload();
    },
    reload,
    stop: async () => void (await daemon.stop('SIGTERM')),
    kill: async () => void (await daemon.stop('SIGKILL')),
  };
}
