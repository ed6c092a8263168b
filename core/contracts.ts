/**
 * The contracts every layer shares, and nothing else: the logger, what a Serf member is, the effect
 * funnels (commands, files, long-running processes), what a controller hosts, and how roles see the
 * instance registry, the load balancers and the roster. The ground floor of the import direction
 * (docs/architecture.md): this module imports nothing of ours but the instance record's, the
 * balancer record's and the roster's types.
 */
import type { Logger as PinoLogger } from 'pino';
import type { InstanceObserved, InstanceRecord } from './instance-record.js';
import type { ResolvedBalancer } from './lb-record.js';
import type { AdmittedNode } from './trust.js';

/** The logger every component receives; a pino child logger in production and tests. */
export type Logger = PinoLogger;

/** Serf member status as reported by the RPC `members` command. */
export type MemberStatus = 'alive' | 'leaving' | 'left' | 'failed' | 'none';

/** One cluster member, decoded from Serf's member record into plain values. */
export interface Member {
  readonly name: string;
  /** Printable IP address (IPv4 dotted quad, or IPv6). */
  readonly addr: string;
  readonly port: number;
  readonly tags: Readonly<Record<string, string>>;
  readonly status: MemberStatus;
  /**
   * The roles the member's `trust` tag proves it was admitted with, as checked by this node against
   * the cluster authority; absent when this node holds no credentials to check with (then the tags
   * decide, as before admission existed). See core/trust.ts.
   */
  readonly trusted?: readonly string[];
}

/** Serf's member event types, which are also the dispatcher's filter names for them. */
export const MEMBER_EVENT_TYPES = ['member-join', 'member-leave', 'member-failed', 'member-update', 'member-reap'] as const;

/** One of Serf's member event types. */
export type MemberEventType = (typeof MEMBER_EVENT_TYPES)[number];

/** Result of running one external command through the injected runner. */
export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** Options for one command run. */
export interface RunOptions {
  readonly timeoutMs?: number;
  readonly input?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

/**
 * The single funnel for external commands: an argv array, never a shell string. It rejects with
 * `CommandFailedError` on a non-zero exit, a timeout or a missing binary.
 */
export type Run = (file: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

/** The single funnel for file effects. `write` is atomic (temp file + rename). */
export interface FileOps {
  /** Current content, or `undefined` when the file does not exist. */
  read(path: string): Promise<string | undefined>;
  write(path: string, content: string, mode?: number): Promise<void>;
  remove(path: string): Promise<void>;
  /**
   * Permission bits (`mode & 0o7777`) of an existing file, or `undefined` when it does not exist.
   * Optional: when present, apply treats a mode change as a change and rollback restores the old
   * mode instead of 0o644 (so a 0o600 secret is never widened by a rollback).
   */
  mode?(path: string): Promise<number | undefined>;
}

/** A long-running child process (a daemon a role supervises), started through the injected spawner. */
export interface Daemon {
  readonly pid: number | undefined;
  /** Resolves with the exit code (or null after a signal) once the process has ended. */
  readonly exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  /**
   * Sends one JSON message over the IPC channel (only when spawned with `onMessage`); false when the
   * channel is closed. The way secrets reach a child: never argv, environment or a file it reads.
   */
  send?(message: unknown): boolean;
}

/** How a daemon is spawned. */
export interface SpawnOptions {
  /** Each line of its stdout and stderr. */
  readonly onLine?: (line: string) => void;
  /**
   * The system user to run it as. When the agent runs as root the child gets that user's uid and
   * gid, no supplementary groups and so no capabilities (a uid change from root clears them); an
   * unknown user falls back to `nobody`, said in the log once. Ignored when the agent is not root.
   */
  readonly user?: string;
  /** Opens a Node IPC channel (JSON): the child's messages arrive here, `Daemon.send` writes to it. */
  readonly onMessage?: (message: unknown) => void;
}

/** The single funnel for long-running processes: argv array; each output line goes to `onLine`. */
export type Spawn = (file: string, args: readonly string[], options?: SpawnOptions) => Daemon;

/** The program and its arguments. */
export type Argv = readonly [file: string, args: readonly string[]];

/** What roles see of a registered instance: enough for DHCP reservations and DNS names. */
export interface InstanceSummary {
  readonly name: string;
  /** MAC addresses, lower case with colons; the first is the primary NIC. */
  readonly macs: readonly string[];
  /** IP addresses; the first IPv4 is the one reserved. */
  readonly ips: readonly string[];
  /**
   * A planned bare-metal host (its record has a `host` block, core/host-record.ts): once it joins,
   * it is also the Serf member of the same name and address, and keeps its reservation and name.
   */
  readonly host?: true;
  /**
   * A planned host that is a Raspberry Pi (`host.arch` rpi): the gateway tags its MACs so that only
   * they get the Pi bootloader's DHCP answer (option 43 "Raspberry Pi Boot", TFTP server).
   */
  readonly rpi?: true;
}

/** A live copy of the instance registry that a role keeps while it runs. */
export interface InstanceFeed {
  /** The latest instances (kept while the registry is unreachable), or undefined before the first read. */
  snapshot(): readonly InstanceSummary[] | undefined;
  stop(): Promise<void>;
}

/**
 * Opens a feed on the registry at these NATS servers; `onChange` is called (debounced) after the
 * first read and after every change.
 */
export type InstanceFeedFactory = (servers: readonly string[], onChange: () => void, log: Logger) => InstanceFeed;

/** A live copy of the load balancer registry and the instances its selectors look at, kept while a gateway runs. */
export interface LbFeed {
  /**
   * The balancers that can be served together (of conflicting records the older one), sorted by
   * name, with their targets resolved against the latest instances and `members`: the members of
   * the state the role renders, so `member:NAME` targets follow the same members as the rest of that
   * render, and a member event needs nothing of the feed. Kept while the controllers are
   * unreachable; undefined before the balancers and the instances were first read.
   */
  snapshot(members: readonly Pick<Member, 'name' | 'addr' | 'status'>[]): readonly ResolvedBalancer[] | undefined;
  stop(): Promise<void>;
}

/**
 * Opens a balancer feed at these NATS servers; `onChange` is called (debounced) after the first
 * read and after every change that can alter the resolved servers (a record created, changed or
 * removed; an instance starting or stopping to serve, moving, or entering or leaving a tag selector).
 */
export type LbFeedFactory = (servers: readonly string[], onChange: () => void, log: Logger) => LbFeed;

/** A live status to record; the link adds the time. */
export type ObservedWrite = Omit<InstanceObserved, 'at'>;

/** What the compute role reads from and writes to the registry. */
export interface ComputeRegistry {
  /** The latest records, or undefined before the first full read. */
  snapshot(): readonly InstanceRecord[] | undefined;
  /** Sets a record's IPs (its real addresses); a record gone meanwhile is not an error. */
  setIps(id: string, ips: readonly string[]): Promise<void>;
  /** Records what the node sees the instance do (`observed`); a record gone meanwhile is not an error. */
  setObserved(id: string, observed: ObservedWrite): Promise<void>;
  /** Removes a record (after its container was deleted); one gone already is not an error. */
  remove(id: string): Promise<void>;
  stop(): Promise<void>;
}

/** Opens the link on these NATS servers; `onChange` is called (debounced) after each change. */
export type ComputeRegistryFactory = (servers: readonly string[], onChange: () => void, log: Logger) => ComputeRegistry;

/** A watched copy of the roster (the admitted nodes) that the controller role renders its NATS users from. */
export interface RosterFeed {
  /** The admitted nodes, or undefined before the first full read. */
  snapshot(): readonly AdmittedNode[] | undefined;
  stop(): Promise<void>;
}

/** Opens a roster feed at these servers with the node's credentials; `onChange` runs after the first read and every change. */
export type RosterFeedFactory = (
  servers: readonly string[],
  credentials: { readonly seed: string },
  onChange: () => void,
  log: Logger,
  /** Where to keep the last copy read, served at the next start until NATS answers. */
  cacheFile?: string,
) => RosterFeed;

/** What a hosted service is started with. */
export interface HostedServiceContext {
  /** This node's Serf name (also its NATS server name). */
  readonly node: string;
  /**
   * `nats://HOST:PORT` of the local nats-server (loopback when it listens on a wildcard). The server
   * restarts when its config changes and after a crash, so connect with `maxReconnectAttempts: -1`.
   */
  readonly natsUrl: string;
  /** Every member Serf knows, sorted by name, as of the start. */
  readonly members: readonly Member[];
  /** The node's NATS credentials (the seed of its nkey; core/trust.ts): connect with them. */
  readonly credentials?: { readonly seed: string };
  /** A child logger with `service: <name>`. */
  readonly log: Logger;
}

/** A service the controller role runs in-process. */
export interface HostedService {
  /** Unique among the services of one role; used in logs and errors. */
  readonly name: string;
  /** Starts serving; rejecting (or taking longer than the role's timeout) counts as a failure. */
  start(ctx: HostedServiceContext): Promise<void>;
  /** Membership changed (any member joined, left, failed, changed its tags). Must not throw. */
  membersChanged?(members: readonly Member[]): void;
  /**
   * What of the agent config the service starts from (its section, serialised). When this differs
   * after a config reload from what it was at the start, the role restarts the service, so a
   * change (a revoked credential, say) takes effect without an agent restart.
   */
  configKey?(): string;
  /** Stops serving and releases what `start` took; called only after a successful start. */
  stop(): Promise<void>;
}
