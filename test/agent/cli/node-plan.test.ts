/**
 * The pure plan of `mammatus node add` (agent/cli/node-plan.ts): the files a node gets (golden),
 * what a second run keeps, and the parsers of what the executor reads on the host.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { admittedNode, createAuthority, mintCredentials } from '../../../core/trust.js';
import {
  NODE_PATHS,
  checkAddrPort,
  chooseJoin,
  chooseRpcAuth,
  decideCredentials,
  describeFiles,
  joinAddresses,
  planAptSource,
  planConfig,
  planCredentials,
  planTags,
  restartsOf,
  sha256,
  type ConfigInput,
} from '../../../agent/cli/node-plan.js';
import {
  aptUpdateFailed,
  checkOsRelease,
  daemonStartArgv,
  daemonStopArgv,
  packagesToInstall,
  parseModes,
  parsePackages,
  parseSha256,
} from '../../../agent/cli/node-host.js';
import { hostAddresses, hostNodeName, nameTaken, type NameCheck } from '../../../agent/cli/node-names.js';
import type { Member } from '../../../core/contracts.js';
import { fixedCredentials } from '../../helpers/trust.js';
import { certFingerprint, makeRoot } from '../../../src/ca/pki.js';

const GOLDEN = join(import.meta.dirname, '__golden__', 'node-plan');
const GOSSIP = 'kZyLZ9tVMWxNqRb4oPq5aA==';
const RPC = 'rpc-secret-0123456789abcdef';
const INPUT: ConfigInput = {
  node: 'store-1',
  roles: ['storage'],
  gossipKey: GOSSIP,
  rpcAuth: RPC,
  join: ['10.0.0.2:7946', '10.0.0.1:7946'],
  bind: '10.0.0.7:7946',
  rpcAddr: '127.0.0.1:7373',
};
const member = (name: string, addr: string, status: Member['status'] = 'alive'): Member => ({
  name,
  addr,
  port: 7946,
  status,
  tags: { mammatus: '0.1.0', role: 'storage' },
});
const ARMORED = Buffer.from('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ\n-----END PGP PUBLIC KEY BLOCK-----\n');

describe('node add plan', () => {
  it('renders Serf config, agent drop-in, tags, credentials and apt source (golden)', async () => {
    const creds = fixedCredentials('store-1', ['storage'], 1);
    const files = [
      ...planCredentials(creds),
      ...planConfig(INPUT),
      planTags(undefined, ['storage'])!,
      ...planAptSource('http://10.0.0.1/apt/', ARMORED),
      ...planAptSource('http://10.0.0.1/apt/', Buffer.from([0x99, 0x01, 0x0d, 0x04])),
    ];
    await expect(describeFiles(files)).toMatchFileSnapshot(join(GOLDEN, 'storage-node.txt'));
  });

  it('renders a node with Serf defaults and no roles (golden)', async () => {
    const files = planConfig({ node: 'bare', roles: [], gossipKey: GOSSIP, rpcAuth: RPC, join: [] });
    await expect(describeFiles(files)).toMatchFileSnapshot(join(GOLDEN, 'defaults.txt'));
  });

  it('keeps the secrets private and restarts only what a file feeds', () => {
    const files = [...planCredentials(fixedCredentials('store-1', ['storage'])), ...planConfig(INPUT)];
    const byPath = new Map(files.map((f) => [f.path, f]));
    expect(byPath.get(NODE_PATHS.credentials)?.mode).toBe(0o600);
    expect(byPath.get(NODE_PATHS.serfConfig)?.mode).toBe(0o600);
    expect(byPath.get(NODE_PATHS.agentConfig)?.mode).toBe(0o600);
    expect(byPath.get(NODE_PATHS.authority)?.mode).toBe(0o644);
    expect([...restartsOf([byPath.get(NODE_PATHS.agentConfig)!])]).toEqual(['agent']);
    expect([...restartsOf([byPath.get(NODE_PATHS.serfConfig)!])].sort()).toEqual(['agent', 'serf']);
    // The join list is sorted: the same members in another order change nothing.
    const again = planConfig({ ...INPUT, join: [...INPUT.join].reverse() });
    expect(again.map((f) => sha256(f.content))).toEqual(planConfig(INPUT).map((f) => sha256(f.content)));
  });

  it("merges the role tag into Serf's own tags file and leaves it alone when the role is right", () => {
    const live = '{"mammatus":"0.1.0","role":"storage","trust":"x"}\n';
    expect(planTags(live, ['storage'])).toBeUndefined();
    const changed = planTags(live, ['storage', 'compute']);
    expect(JSON.parse(changed!.content as string)).toEqual({ mammatus: '0.1.0', role: 'storage,compute', trust: 'x' });
    expect(JSON.parse(planTags('not json', ['storage'])!.content as string)).toEqual({ role: 'storage' });
    expect(planTags('{"role":""}', [])).toBeUndefined();
  });

  it('keeps the RPC secret a host already has, else takes the fresh one', () => {
    const existing = planConfig(INPUT)[0].content as string;
    expect(chooseRpcAuth(existing, 'fresh-secret-aaaaaaaaaaaa')).toBe(RPC);
    expect(chooseRpcAuth(undefined, 'fresh-secret-aaaaaaaaaaaa')).toBe('fresh-secret-aaaaaaaaaaaa');
    expect(chooseRpcAuth('{"rpc_auth":"short"}', 'fresh-secret-aaaaaaaaaaaa')).toBe('fresh-secret-aaaaaaaaaaaa');
    expect(chooseRpcAuth('{broken', 'fresh-secret-aaaaaaaaaaaa')).toBe('fresh-secret-aaaaaaaaaaaa');
  });

  it('keeps credentials of the same node, roles and authority that the roster lists; mints otherwise', async () => {
    const creds = fixedCredentials('store-1', ['storage'], 2);
    const text = JSON.stringify(creds);
    const entry = admittedNode(creds);
    expect(decideCredentials(text, entry, creds.authority, 'store-1', ['storage'])).toMatchObject({ action: 'keep' });
    expect(decideCredentials(undefined, entry, creds.authority, 'store-1', ['storage'])).toMatchObject({ action: 'mint', why: /has none/ });
    expect(decideCredentials('{"x":1}', entry, creds.authority, 'store-1', ['storage'])).toMatchObject({
      action: 'mint',
      why: /unreadable/,
    });
    // Another role set: re-minted, keeping the node's user key.
    expect(decideCredentials(text, entry, creds.authority, 'store-1', ['storage', 'compute'])).toEqual({
      action: 'mint',
      seed: creds.seed,
      why: 'the roles change from storage',
    });
    expect(decideCredentials(text, undefined, creds.authority, 'store-1', ['storage'])).toMatchObject({
      action: 'mint',
      seed: creds.seed,
      why: /roster does not list/,
    });
    expect(decideCredentials(text, { ...entry, nkey: 'Uother' }, creds.authority, 'store-1', ['storage'])).toMatchObject({
      action: 'mint',
      why: /another key/,
    });
    expect(decideCredentials(text, entry, creds.authority, 'store-2', ['storage'])).toMatchObject({ action: 'mint', why: /for store-1/ });
    // The cluster got a CA: the credentials are minted again (same key) to pin its root, and to
    // carry the root itself when they pin it only (credentials older than ca_root).
    const rootPem = (await makeRoot()).certPem;
    const pin = { ca_fingerprint: certFingerprint(rootPem), ca_root: `${rootPem.trim()}\n` };
    expect(decideCredentials(text, entry, creds.authority, 'store-1', ['storage'], pin)).toEqual({
      action: 'mint',
      seed: creds.seed,
      why: "the cluster CA's root is to be pinned",
    });
    const pinnedOnly = JSON.stringify({ ...creds, ca_fingerprint: pin.ca_fingerprint });
    expect(decideCredentials(pinnedOnly, entry, creds.authority, 'store-1', ['storage'], pin)).toEqual({
      action: 'mint',
      seed: creds.seed,
      why: "the cluster CA's root is to be carried",
    });
    const pinned = JSON.stringify({ ...creds, ...pin });
    expect(decideCredentials(pinned, entry, creds.authority, 'store-1', ['storage'], pin)).toMatchObject({ action: 'keep' });
    // Another cluster's credentials: a new key too.
    const foreign = mintCredentials(createAuthority(), 'store-1', ['storage'], new Date());
    const d = decideCredentials(JSON.stringify(foreign), entry, creds.authority, 'store-1', ['storage']);
    expect(d).toEqual({ action: 'mint', why: "the host's credentials are from another cluster" });
  });

  it('installs only what is missing or at another version', () => {
    const listed = parsePackages('serf ii  0.9.4~ds1-1+b13\nmammatus-agent ii  0.1.0\n');
    expect(packagesToInstall(listed, '0.1.0')).toEqual([]);
    expect(packagesToInstall(listed, '0.1.1')).toEqual(['mammatus-agent']);
    expect(packagesToInstall(parsePackages('serf un \nmammatus-agent rc  0.1.0\n'), '0.1.0')).toEqual(['serf', 'mammatus-agent']);
    expect(packagesToInstall(parsePackages(''), '0.1.0')).toEqual(['serf', 'mammatus-agent']);
  });

  it('tells a failed apt-get update of the cluster source, also when apt exits 0', () => {
    expect(aptUpdateFailed(0, 'Get:1 http://10.0.0.1 ./ InRelease [1,234 B]\nReading package lists...\n')).toBe(false);
    expect(aptUpdateFailed(100, '')).toBe(true);
    const refused =
      'Ign:1 http://127.0.0.1:9 ./ InRelease\nErr:2 http://127.0.0.1:9 ./ Release\n  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)\nReading package lists...\nW: Failed to fetch http://127.0.0.1:9/./Release\n';
    expect(aptUpdateFailed(0, refused)).toBe(true);
  });

  it('reads os-release, sha256sum and stat output', () => {
    expect(checkOsRelease('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\n')).toBe('Debian GNU/Linux 13 (trixie)');
    expect(checkOsRelease('ID=raspbian\nID_LIKE=debian\n')).toBe('raspbian');
    expect(() => checkOsRelease('PRETTY_NAME="Fedora Linux 41"\nID=fedora\n')).toThrow(/Fedora Linux 41.*Debian or Ubuntu/);
    expect(() => checkOsRelease('')).toThrow(/unknown system/);
    const sum = 'a'.repeat(64);
    expect(parseSha256(`${sum}  /etc/serf/mammatus.json\nsha256sum: /x: No such file\n`)).toEqual(
      new Map([['/etc/serf/mammatus.json', sum]]),
    );
    expect(parseModes('600 /var/lib/mammatus/credentials.json\n644 /a b\n')).toEqual(
      new Map([
        ['/var/lib/mammatus/credentials.json', 0o600],
        ['/a b', 0o644],
      ]),
    );
  });

  it('starts daemons without systemd detached with pid files (argv, never a shell)', () => {
    expect(daemonStartArgv('agent')).toEqual([
      'start-stop-daemon',
      '--start',
      '--background',
      '--make-pidfile',
      '--pidfile',
      '/run/mammatus-node/agent.pid',
      '--output',
      '/var/log/mammatus/agent.log',
      '--startas',
      '/usr/bin/mammatus',
      '--',
      'agent',
    ]);
    expect(daemonStopArgv('serf')).toContain('INT/15/KILL/5');
  });

  it('checks --bind and --rpc', () => {
    expect(checkAddrPort('127.0.0.2:7946', '--bind')).toBe('127.0.0.2:7946');
    expect(checkAddrPort(undefined, '--bind')).toBeUndefined();
    expect(() => checkAddrPort('node1:7946', '--bind')).toThrow(/--bind must be IP:PORT/);
    expect(() => checkAddrPort('127.0.0.1', '--rpc')).toThrow(/--rpc/);
    expect(() => checkAddrPort('127.0.0.1:99999', '--rpc')).toThrow(/--rpc/);
  });

  it('keeps the join list while one of its members is alive: a re-run after another node joined changes nothing', () => {
    const first = planConfig(INPUT);
    const existing = first[0].content as string;
    // B joined, and one of the first members is gone: the file stays byte for byte (no restart).
    const later = planConfig({ ...INPUT, existingSerfConfig: existing, join: ['10.0.0.1:7946', '10.0.0.9:7946'] });
    expect(later.map((f) => sha256(f.content))).toEqual(first.map((f) => sha256(f.content)));
    expect(chooseJoin(existing, ['10.0.0.2:7946', '10.0.0.3:7946'])).toEqual(['10.0.0.1:7946', '10.0.0.2:7946']);
    // None of them alive any more: the alive members are written.
    expect(chooseJoin(existing, ['10.0.0.9:7946', '10.0.0.3:7946'])).toEqual(['10.0.0.3:7946', '10.0.0.9:7946']);
    expect(chooseJoin(undefined, ['10.0.0.9:7946'])).toEqual(['10.0.0.9:7946']);
    expect(chooseJoin('{broken', ['10.0.0.9:7946'])).toEqual(['10.0.0.9:7946']);
    expect(chooseJoin('{"retry_join":[1]}', ['10.0.0.9:7946'])).toEqual(['10.0.0.9:7946']);
    // The join list: alive members with an agent or a role, never the node itself.
    const members = [
      member('a', '10.0.0.1'),
      member('store-1', '10.0.0.7'),
      member('gone', '10.0.0.5', 'failed'),
      { ...member('plain', '10.0.0.6'), tags: {} },
    ];
    expect(joinAddresses(members, 'store-1')).toEqual(['10.0.0.1:7946']);
  });

  it('refuses a name another node holds: another key in the roster, or an alive member elsewhere', () => {
    const creds = fixedCredentials('debian', ['storage'], 1);
    const other = admittedNode(fixedCredentials('debian', ['compute'], 2));
    const base: NameCheck = {
      node: 'debian',
      remoteCredentials: undefined,
      authority: creds.authority,
      roster: undefined,
      members: [],
      hostAddrs: ['10.0.0.7'],
    };
    expect(nameTaken(base)).toBeUndefined();
    expect(nameTaken({ ...base, roster: other })).toMatch(
      /^the roster already lists debian with another key \(U[A-Z2-7]{55}, roles compute, admitted /,
    );
    // The host holding the name's credentials, with the key the roster lists, is that node.
    const own = { ...base, remoteCredentials: JSON.stringify(creds), roster: admittedNode(creds) };
    expect(nameTaken(own)).toBeUndefined();
    expect(nameTaken({ ...own, members: [member('debian', '10.0.0.8')] })).toBeUndefined();
    expect(nameTaken({ ...own, roster: other })).toMatch(/another key/);
    // Credentials for another name prove nothing.
    expect(nameTaken({ ...base, remoteCredentials: JSON.stringify(fixedCredentials('web1', ['storage'], 1)), roster: other })).toMatch(
      /another key/,
    );
    expect(nameTaken({ ...base, members: [member('debian', '10.0.0.8')] })).toBe(
      'debian is an alive Serf member at 10.0.0.8:7946, which is not this host',
    );
    expect(nameTaken({ ...base, members: [member('debian', '10.0.0.7')] })).toBeUndefined();
    expect(nameTaken({ ...base, members: [member('debian', '10.0.0.8', 'failed')] })).toBeUndefined();
    expect(hostAddresses('10.0.0.7 fd00::7 \n', ['host.lan', '127.0.0.2:7946', '[fd00::9]:7946', '10.0.0.3', undefined])).toEqual([
      '10.0.0.7',
      'fd00::7',
      'host.lan',
      '127.0.0.2',
      'fd00::9',
      '10.0.0.3',
    ]);
  });

  it('tells which node a host is: its credentials, else its Serf config', () => {
    const creds = JSON.stringify(fixedCredentials('web2', ['storage']));
    expect(hostNodeName(creds, '{"node_name":"other"}')).toBe('web2');
    expect(hostNodeName(undefined, '{"node_name":"web1"}')).toBe('web1');
    expect(hostNodeName('{broken', undefined)).toBeUndefined();
    expect(hostNodeName(undefined, undefined)).toBeUndefined();
  });
});
