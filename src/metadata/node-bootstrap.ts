/**
 * The user-data that turns a fresh Debian host (PXE-booted, or any image with cloud-init) into a
 * mammatus node: it adds the cluster's signed apt repository, writes Serf's config (gossip key, the
 * nodes to join, the `role` tag) and installs and starts `serf` and `mammatus-agent`. In join mode
 * (a planned host, issue 19) it carries no gossip key and no Serf config: it writes the host's
 * one-time join secret, and `mammatus node join` exchanges it at a controller for the credentials,
 * the gossip key and the join list.
 *
 * Order matters and cloud-init provides it: write_files (init stage) runs before the package install
 * (final stage), so Debian's serf package starts serf with our config already in /etc/serf, and no
 * package ever owns the files we write (no conffile prompt). Built as a YAML document with the `yaml`
 * library, never by pasting strings, so no value can break the YAML. Pure.
 */
import { isIP } from 'node:net';
import { Document, isMap, isScalar, isSeq, type Node } from 'yaml';
import { isDnsLabel, isHostPort, isHostname } from '../../core/net.js';
import { isInstallDisk, JOIN_SECRET } from '../../core/host-record.js';
import { ROLE_NAMES, type RoleName } from '../../core/members.js';
import { SettingsError } from '../../core/validation.js';
import { checkGossipKey } from './vendor-data-settings.js';
import { errorMessage } from '../../core/errors.js';
import { FETCH_KEY_SCRIPT, KEY_FINGERPRINT_CHECK, normalizeFingerprint } from './apt-key-fetch.js';

/** What one node's bootstrap depends on. */
export interface NodeBootstrapInput {
  /** The node's hostname (a DNS label) and Serf node name; absent = whatever the host is called. */
  readonly hostname?: string;
  /** Its roles: the Serf tag `role`. May be empty (roles can be set later with `serf tags`). */
  readonly roles: readonly string[];
  /** Serf's gossip key (`serf keygen`): base64 of 16, 24 or 32 bytes. Required except in join mode. */
  readonly gossipKey?: string;
  /** Nodes to join (`host` or `host:port`); may be empty for the first node. Not in join mode. */
  readonly join?: readonly string[];
  /** The cluster's flat apt repository, e.g. `http://10.0.0.1/apt/`. */
  readonly aptRepoUrl: string;
  /** The repository's public key, ASCII-armoured; preferred: the key then travels in the user-data. */
  readonly aptKeyArmored?: string;
  /**
   * Else a URL the host downloads the key from at first boot (needs curl or wget on the image).
   * `https://`, or plain `http://` only together with {@link aptKeyFingerprint}.
   */
  readonly aptKeyUrl?: string;
  /**
   * The key's OpenPGP fingerprint (40 hex digits, as `repo-build.sh` and `gpg` print it; spaces
   * allowed). With it the host refuses a downloaded key that is not exactly this one key.
   * Required for an `http://` {@link aptKeyUrl}; only used with {@link aptKeyUrl}.
   */
  readonly aptKeyFingerprint?: string;
  /** Serf's snapshot file. Default `/var/lib/serf/snapshot`. */
  readonly snapshotPath?: string;
  /** Serf's `rpc_auth`; also written for the agent in /etc/mammatus/agent.d. Absent = none. */
  readonly rpcAuth?: string;
  /**
   * Join mode: the host gets its credentials, gossip key and join list from `mammatus node join`
   * (gossipKey, join, rpcAuth and snapshotPath must then be absent: the join writes Serf's config).
   */
  readonly hostJoin?: HostJoinBootstrap;
}

/** What a planned host's bootstrap adds in join mode. */
export interface HostJoinBootstrap {
  /**
   * Its one-time join secret. Absent = none waits for it (joined already, or expired): the seed
   * then only installs and starts the packages, and joins nothing.
   */
  readonly secret?: string;
  /** After joining, install the running system to this whole disk (`mammatus-install-to-disk`). */
  readonly installDisk?: string;
}

/** Files the bootstrap writes on the host. */
export const NODE_BOOTSTRAP_PATHS = {
  sources: '/etc/apt/sources.list.d/mammatus.sources',
  // Debian's serf.service runs `serf agent -config-dir=/etc/serf/`: every *.json there is read.
  serfConfig: '/etc/serf/mammatus.json',
  // A tags file and not `tags` in the config: serf then keeps `serf tags -set` changes across restarts
  // (serf refuses both at once).
  serfTags: '/var/lib/serf/tags.json',
  agentConfig: '/etc/mammatus/agent.d/10-bootstrap.yaml',
  // Under /run (a tmpfs: the spent secret is gone at the next boot) but not in /run/mammatus, the
  // agent unit's RuntimeDirectory, which systemd empties whenever the agent stops.
  joinSecret: '/run/mammatus-join-secret',
} as const;

const KEY_BLOCK = /-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]+-----END PGP PUBLIC KEY BLOCK-----/;

/**
 * Renders the `#cloud-config` user-data for one node.
 *
 * @throws SettingsError naming the first input field that is wrong.
 */
export function renderNodeBootstrap(input: NodeBootstrapInput): string {
  const roles = checkRoles(input.roles);
  const joining = input.hostJoin !== undefined;
  if (joining) checkHostJoin(input);
  else checkGossip(input.gossipKey);
  if (input.hostname !== undefined && !isDnsLabel(input.hostname)) throw new SettingsError('hostname', 'must be a DNS label');
  const join = input.join ?? [];
  join.forEach((j, i) => {
    if (!(isIP(j) !== 0 || isHostname(j) || isHostPort(j))) throw new SettingsError(`join.${i}`, 'must be host or host:port');
  });
  const repo = checkUrl(input.aptRepoUrl, 'aptRepoUrl');
  if ((input.aptKeyArmored === undefined) === (input.aptKeyUrl === undefined)) {
    throw new SettingsError('aptKeyArmored', 'give aptKeyArmored or aptKeyUrl (one of them)');
  }
  if (input.aptKeyArmored !== undefined && !KEY_BLOCK.test(input.aptKeyArmored)) {
    throw new SettingsError('aptKeyArmored', 'must be an ASCII-armoured PGP public key block');
  }
  const keyUrl = input.aptKeyUrl === undefined ? undefined : checkUrl(input.aptKeyUrl, 'aptKeyUrl');
  const pin = checkKeyPin(keyUrl, input.aptKeyFingerprint);
  const snapshot = input.snapshotPath ?? '/var/lib/serf/snapshot';
  if (!snapshot.startsWith('/') || /\p{Cc}/u.test(snapshot)) throw new SettingsError('snapshotPath', 'must be an absolute path');
  if (input.rpcAuth !== undefined && !/^[\x21-\x7e]+$/.test(input.rpcAuth))
    throw new SettingsError('rpcAuth', 'must be printable ASCII without spaces');

  // apt tells the key's format by the file's extension: .asc armoured, .gpg binary. A pinned key is
  // installed as the binary bytes its check parsed (apt-key-fetch.ts), whatever the download was.
  const binary = pin !== undefined || (keyUrl !== undefined && new URL(keyUrl).pathname.endsWith('.gpg'));
  const keyPath = `/etc/apt/keyrings/mammatus.${binary ? 'gpg' : 'asc'}`;
  const files: Record<string, unknown>[] = [];
  if (input.aptKeyArmored !== undefined) files.push(file(keyPath, '0644', withNewline(input.aptKeyArmored)));
  files.push(file(NODE_BOOTSTRAP_PATHS.sources, '0644', aptSourceText(repo, keyPath)));
  if (!joining) {
    const serf = serfNodeConfig({ ...input, gossipKey: input.gossipKey ?? '', join, snapshotPath: snapshot });
    // 0600: the gossip key and the RPC secret.
    files.push(file(NODE_BOOTSTRAP_PATHS.serfConfig, '0600', `${JSON.stringify(serf, null, 2)}\n`));
  }
  files.push(file(NODE_BOOTSTRAP_PATHS.serfTags, '0644', `${JSON.stringify(roles.length ? { role: roles.join(',') } : {})}\n`));
  // 0600, root's: the secret is the host's whole claim to membership until it is spent.
  if (input.hostJoin?.secret) files.push(file(NODE_BOOTSTRAP_PATHS.joinSecret, '0600', `${input.hostJoin.secret}\n`));
  if (input.rpcAuth !== undefined) {
    files.push(file(NODE_BOOTSTRAP_PATHS.agentConfig, '0600', new Document({ serf: { rpc_auth: input.rpcAuth } }).toString()));
  }

  const config: Record<string, unknown> = {
    ...(input.hostname ? { hostname: input.hostname } : {}),
    // Only for a key given by URL: bootcmd runs in the init stage, before apt needs the key; the URL
    // and path are arguments of the fixed script, never part of it.
    // A pinned key travels with its check program as two more arguments.
    ...(keyUrl
      ? {
          bootcmd: [
            [
              'cloud-init-per',
              'instance',
              'mammatus-apt-key',
              'sh',
              '-c',
              FETCH_KEY_SCRIPT,
              'sh',
              keyUrl,
              keyPath,
              ...(pin ? [pin, KEY_FINGERPRINT_CHECK] : []),
            ],
          ],
        }
      : {}),
    write_files: files,
    package_update: true,
    packages: ['serf', 'mammatus-agent'],
    // Both packages start their service on install; this also covers an image where serf was already
    // running with an older config, or a policy-rc.d that blocked the start. --no-block: runcmd runs
    // inside cloud-final.service, and waiting there for units could hang the boot.
    runcmd: runcmd(input.hostJoin),
  };
  const doc = new Document(config);
  doc.commentBefore = joining
    ? ` mammatus host bootstrap, join mode (src/metadata/node-bootstrap.ts): the cluster apt repository,\n serf's role tag, mammatus-agent, ${input.hostJoin?.secret ? 'and the one-time join secret' : 'and no join secret (joined already, or expired: mammatus host rejoin)'}.`
    : ' mammatus node bootstrap (src/metadata/node-bootstrap.ts): the cluster apt repository,\n serf with its gossip key, join list and role tag, and mammatus-agent.';
  flowLeaves(doc.contents);
  return `#cloud-config\n${doc.toString({ lineWidth: 0 })}`;
}

/**
 * The commands of the final stage. cloud-init runs them as one shell script: a failed join ends it
 * (`|| exit 1`, a fixed line), so a host that did not join neither restarts into half a node nor
 * installs itself to disk.
 */
function runcmd(hostJoin: HostJoinBootstrap | undefined): unknown[] {
  const start = [
    ['systemctl', 'enable', 'serf.service', 'mammatus-agent.service'],
    ['systemctl', '--no-block', 'restart', 'serf.service', 'mammatus-agent.service'],
  ];
  if (!hostJoin?.secret) return start;
  // A host restarts first: its packages enabled both units already, and a plain `enable` reloads
  // systemd, 18–25 s of an emulated guest before the node comes up (docs/benchmarks.md §14).
  return [
    `mammatus node join --secret-file ${NODE_BOOTSTRAP_PATHS.joinSecret} || exit 1`,
    start[1],
    ['systemctl', 'enable', '--no-reload', 'serf.service', 'mammatus-agent.service'],
    ...(hostJoin.installDisk ? [['mammatus-install-to-disk', hostJoin.installDisk]] : []),
  ];
}

function checkGossip(key: string | undefined): void {
  if (key === undefined) throw new SettingsError('gossipKey', 'is required (or hostJoin, the join mode of a planned host)');
  try {
    checkGossipKey(key, 'gossipKey');
  } catch (err) {
    throw new SettingsError('gossipKey', errorMessage(err).replace(/^gossipKey: /, ''));
  }
}

/** Join mode writes no Serf config: what would go into it must not be given. */
function checkHostJoin(input: NodeBootstrapInput): void {
  for (const field of ['gossipKey', 'join', 'rpcAuth', 'snapshotPath'] as const)
    if (input[field] !== undefined) throw new SettingsError(field, "not in join mode: mammatus node join writes Serf's config");
  const { secret, installDisk } = input.hostJoin ?? {};
  if (secret !== undefined && !JOIN_SECRET.test(secret))
    throw new SettingsError('hostJoin.secret', 'must be a join secret (43 base64url characters)');
  if (installDisk !== undefined && !isInstallDisk(installDisk))
    throw new SettingsError('hostJoin.installDisk', 'must be a whole disk such as /dev/sda');
}

/** What Serf's config file of a node holds (see {@link serfNodeConfig}). */
export interface SerfNodeConfigInput {
  readonly gossipKey: string;
  /** The Serf node name; absent = the host's name. */
  readonly hostname?: string;
  readonly join: readonly string[];
  readonly rpcAuth?: string;
  /** Gossip address `ip[:port]`; absent = Serf's default (all interfaces, 7946). */
  readonly bind?: string;
  /** RPC address `ip:port`; absent = Serf's default, 127.0.0.1:7373. */
  readonly rpcAddr?: string;
  readonly snapshotPath?: string;
}

/**
 * The JSON object of a node's Serf config file (NODE_BOOTSTRAP_PATHS.serfConfig, mode 0600: it
 * holds the gossip key and the RPC secret); the role tag lives in the tags file. Shared by the
 * cloud-init bootstrap and `mammatus node add`. Pure; the caller checks the values.
 */
export function serfNodeConfig(input: SerfNodeConfigInput): Record<string, unknown> {
  return {
    encrypt_key: input.gossipKey,
    ...(input.hostname ? { node_name: input.hostname } : {}),
    ...(input.bind ? { bind: input.bind } : {}),
    ...(input.rpcAddr ? { rpc_addr: input.rpcAddr } : {}),
    // retry_join, not start_join: with start_join serf exits when no one answers yet.
    ...(input.join.length ? { retry_join: [...input.join] } : {}),
    ...(input.rpcAuth ? { rpc_auth: input.rpcAuth } : {}),
    snapshot_path: input.snapshotPath ?? '/var/lib/serf/snapshot',
    tags_file: NODE_BOOTSTRAP_PATHS.serfTags,
  };
}

/** The deb822 apt source of the cluster's flat repository at `repoUrl`, signed by the key at `keyPath`. */
export function aptSourceText(repoUrl: string, keyPath: string): string {
  return `Types: deb\nURIs: ${repoUrl}\nSuites: ./\nSigned-By: ${keyPath}\n`;
}

/**
 * The fingerprint a fetched key must have, or undefined for an https URL without one. A plain
 * http:// key URL needs one: anyone on the path could otherwise hand the host their own key.
 */
function checkKeyPin(keyUrl: string | undefined, fingerprint: string | undefined): string | undefined {
  if (fingerprint === undefined) {
    if (keyUrl?.startsWith('http:'))
      throw new SettingsError('aptKeyUrl', 'a plain http:// key URL needs aptKeyFingerprint (or use https://, or aptKeyArmored)');
    return undefined;
  }
  if (keyUrl === undefined) throw new SettingsError('aptKeyFingerprint', 'only goes with aptKeyUrl');
  return normalizeFingerprint(fingerprint);
}

function file(path: string, permissions: string, content: string): Record<string, unknown> {
  return { path, owner: 'root:root', permissions, content };
}

function withNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** Lists of plain one-line strings (packages, command argv) read best in flow style: `[systemctl, enable, …]`. */
function flowLeaves(node: Node | null): void {
  if (isMap(node)) for (const pair of node.items) flowLeaves(pair.value as Node | null);
  if (isSeq(node)) {
    // Multi-line strings (the key fetch's programs) stay in block style, where they read as written.
    const short = (item: unknown) => !isMap(item) && !isSeq(item) && !(isScalar(item) && String(item.value).includes('\n'));
    if (node.items.every(short)) node.flow = true;
    else for (const item of node.items) flowLeaves(item as Node | null);
  }
}

function checkRoles(roles: readonly string[]): RoleName[] {
  roles.forEach((r, i) => {
    if (!(ROLE_NAMES as readonly string[]).includes(r))
      throw new SettingsError(`roles.${i}`, `unknown role (known: ${ROLE_NAMES.join(', ')})`);
  });
  return ROLE_NAMES.filter((r) => roles.includes(r));
}

function checkUrl(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new SettingsError(field, 'must be an http:// or https:// URL');
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || /\s/.test(value))
    throw new SettingsError(field, 'must be an http:// or https:// URL');
  return url.href;
}
