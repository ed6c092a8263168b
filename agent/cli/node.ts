/**
 * `mammatus node admit|revoke|list`: who belongs to the cluster. Admission mints a node's
 * credentials with the cluster authority (only controllers hold it) and enters the node in the
 * roster, from which every controller renders its NATS users; revocation removes it there, and
 * every controller drops the node's connections at its next reload (within seconds).
 *
 * The first controller of a new cluster admits itself: with no credentials on this node yet,
 * `node admit <this node> --role controller` creates the authority.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../core/files.js';
import { ROLE_NAMES, type RoleName } from '../../core/members.js';
import { connectNats } from '../../core/nats.js';
import {
  AUTHORITY_FILE,
  admittedNode,
  checkNodeName,
  createAuthority,
  mintCredentials,
  type AdmittedNode,
  type NodeCredentials,
} from '../../core/trust.js';
import { errorMessage } from '../../core/errors.js';
import { Roster } from '../../src/trust/roster.js';
import { rootToPin, type CaPin } from '../../src/ca/store.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { formatTable, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { cliCredentials, credentialsPath } from './credentials.js';
import { resolveNatsServers } from './instance.js';

/** `node admit` flags. */
export interface AdmitOptions {
  role: string[];
  /** Where to write the credentials (`-`: stdout); default: this node's file when NAME is this node. */
  out?: string;
  nats?: string;
  json?: boolean;
}

/** Flags of `node revoke` and `node list`. */
export interface NodeOptions {
  nats?: string;
  json?: boolean;
}

/** Parses `--role a,b --role c` into known role names. */
export function parseRoles(values: readonly string[]): RoleName[] {
  const names = values
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = names.filter((n) => !(ROLE_NAMES as readonly string[]).includes(n));
  if (bad.length) throw new UsageError(`unknown role ${bad.join(', ')} (known: ${ROLE_NAMES.join(', ')})`);
  return ROLE_NAMES.filter((r) => names.includes(r));
}

/** Writes credentials where `--out` says; 0600, with the public authority key beside a node's own. */
async function deliver(creds: NodeCredentials, file: string, io: CliIo): Promise<void> {
  if (file === '-') return io.out(JSON.stringify(creds, null, 2));
  await writeFileAtomic(file, `${JSON.stringify(creds, null, 2)}\n`, 0o600);
  await writeFileAtomic(path.join(path.dirname(file), AUTHORITY_FILE), `${creds.authority}\n`, 0o644);
}

/** What `node add` needs of the roster (tests pass a fake). */
export type RosterAccess = Pick<Roster, 'get' | 'put'>;

/** Runs `body` with the roster at the controllers, as this node (which must be a controller). */
export async function withRoster<T>(
  g: GlobalOptions,
  nats: string | undefined,
  creds: NodeCredentials,
  body: (r: Roster, nc: NatsConnection) => Promise<T>,
): Promise<T> {
  const servers = await resolveNatsServers(g, nats);
  const nc = await connectNats(servers, { name: 'mammatus-cli', timeoutMs: 5000, credentials: creds }).catch((err: unknown) => {
    throw new Error(`cannot reach NATS at ${servers.join(', ')}: ${errorMessage(err)}`);
  });
  try {
    return await body(await bindRoster(nc), nc);
  } finally {
    await nc.close();
  }
}

/** The roster; a controller creates it when it starts, so wait a little for one just started. */
async function bindRoster(nc: Parameters<typeof Roster.bind>[0]): Promise<Roster> {
  for (let i = 0; ; i++) {
    try {
      return await Roster.bind(nc);
    } catch (err) {
      if (i >= 20) throw new Error(`the roster is not there (is a controller running?): ${errorMessage(err)}`, { cause: err });
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * Mints `name`'s credentials with the authority of the controller `own` and enters the node in the
 * roster. `seed` keeps an existing user key (re-admission with other roles); default a new one.
 * `caPin` (the cluster CA's root and its fingerprint, when there is one) goes into the credentials.
 */
export async function admitInRoster(
  r: Pick<Roster, 'put'>,
  own: NodeCredentials,
  name: string,
  roles: readonly RoleName[],
  seed?: string,
  caPin?: CaPin,
): Promise<NodeCredentials> {
  if (!own.authority_seed) throw new Error(`${own.node} is not a controller: only a controller can admit`);
  const minted = mintCredentials(own.authority_seed, name, roles, new Date(), seed);
  const creds = caPin ? { ...minted, ca_fingerprint: caPin.ca_fingerprint, ca_root: caPin.ca_root } : minted;
  await r.put(admittedNode(creds));
  return creds;
}

/** `mammatus node admit NAME --role R…` */
export async function admitCommand(g: GlobalOptions, name: string, o: AdmitOptions, io: CliIo): Promise<number> {
  try {
    checkNodeName(name);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const roles = parseRoles(o.role);
  const ownFile = credentialsPath(g);
  const own = await cliCredentials(g);
  if (!own && existsSync(ownFile)) {
    io.err(`error: cannot read ${ownFile} (mode 0600, root's): run node commands as root`);
    return 1;
  }
  if (!own) {
    // A new cluster: its first controller admits itself and creates the authority.
    if (!roles.includes('controller')) {
      io.err(
        `error: no credentials at ${ownFile}: only a controller can admit; a new cluster starts with \`node admit <this node> --role controller\``,
      );
      return 1;
    }
    const creds = mintCredentials(createAuthority(), name, roles, new Date());
    await deliver(creds, o.out ?? ownFile, io);
    io.err(`created a new cluster authority ${creds.authority}; ${name} is its first controller (credentials in ${o.out ?? ownFile})`);
    return 0;
  }
  if (!own.authority_seed) {
    io.err(`error: ${own.node} is not a controller: run node admit on a controller`);
    return 1;
  }
  const self = name === own.node;
  const out = o.out ?? (self ? ownFile : undefined);
  if (!out) throw new UsageError(`--out FILE is needed to write ${name}'s credentials (or --out - for stdout)`);
  // Re-admitting a node keeps its key only when it is this one (its seed is here).
  const creds = await withRoster(g, o.nats, own, async (r, nc) =>
    admitInRoster(r, own, name, roles, self ? own.seed : undefined, await rootToPin(own, nc)),
  );
  await deliver(creds, out, io);
  if (out !== '-')
    io.out(
      o.json
        ? JSON.stringify(admittedNode(creds))
        : `admitted ${name} as ${roles.join(',') || 'a node with no role'}; credentials in ${out}`,
    );
  return 0;
}

/**
 * This node's credentials when it is a controller (it holds the authority's seed); else prints why
 * `what` needs one and returns undefined.
 */
export async function controllerCredentials(g: GlobalOptions, what: string, io: CliIo): Promise<NodeCredentials | undefined> {
  const own = await cliCredentials(g);
  if (own?.authority_seed) return own;
  io.err(`error: only a controller can ${what}: this node holds no controller credentials (${credentialsPath(g)}; run as root)`);
  return undefined;
}

/** Removes `name` from the roster as the controller `own`; false when it was not admitted. */
export function revokeNode(g: GlobalOptions, nats: string | undefined, own: NodeCredentials, name: string): Promise<boolean> {
  return withRoster(g, nats, own, (r) => r.revoke(name));
}

/** `mammatus node revoke NAME` */
export async function revokeCommand(g: GlobalOptions, name: string, o: NodeOptions, io: CliIo): Promise<number> {
  const own = await controllerCredentials(g, 'revoke', io);
  if (!own) return 1;
  const had = await revokeNode(g, o.nats, own, name);
  if (!had) {
    io.err(`error: ${name} is not admitted`);
    return 1;
  }
  io.out(o.json ? JSON.stringify({ revoked: name }) : `revoked ${name}: every controller refuses its connections within seconds`);
  return 0;
}

/** `mammatus node list` */
export async function listNodesCommand(g: GlobalOptions, o: NodeOptions, io: CliIo): Promise<number> {
  const own = await controllerCredentials(g, 'read the roster', io);
  if (!own) return 1;
  const nodes: AdmittedNode[] = await withRoster(g, o.nats, own, (r) => r.list());
  if (o.json) {
    io.out(JSON.stringify(nodes));
    return 0;
  }
  const rows = [['NODE', 'ROLES', 'NKEY', 'ADMITTED'], ...nodes.map((n) => [n.node, n.roles.join(',') || '-', n.nkey, n.admitted_at])];
  for (const line of formatTable(rows)) io.out(line);
  return 0;
}
