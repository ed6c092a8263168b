/**
 * `node add` and `node remove` as commands, over the fake RemoteHost (test/helpers/fake-remote.ts)
 * with a fake roster and Serf: a name another node holds is refused unless `--replace`; a re-run
 * after another member joined changes nothing; a failure after the credentials step says what is
 * left; `node remove` revokes before it tries SSH and never stops or purges another node; a
 * malformed target is a usage error (exit 2).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { admittedNode, type AdmittedNode } from '../../../core/trust.js';
import { nodeAddCommand, type AddDeps, type NodeAddOptions } from '../../../agent/cli/node-add.js';
import { nodeRemoveCommand, type RemoveDeps } from '../../../agent/cli/node-remove.js';
import { NODE_PATHS } from '../../../agent/cli/node-plan.js';
import type { RosterAccess } from '../../../agent/cli/node.js';
import { runCli } from '../../../agent/cli/program.js';
import { fakeHost, type FakeHostState } from '../../helpers/fake-remote.js';
import { fixedCredentials } from '../../helpers/trust.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-node-cmd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const controller = fixedCredentials('ctl', ['controller'], 0);
const credsFile = path.join(dir, 'credentials.json');
writeFileSync(credsFile, JSON.stringify(controller), { mode: 0o600 });
const g = { rpcAddr: '127.0.0.1:1', credentials: credsFile };

const GOSSIP = 'kZyLZ9tVMWxNqRb4oPq5aA==';
const member = (name: string, addr: string): Member => ({ name, addr, port: 7946, status: 'alive', tags: { mammatus: '0.1.0' } });

/** A run's output lines. */
function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) }, out, err };
}

/** A fake roster in a map, counting puts. */
function fakeRoster(entries: AdmittedNode[] = []) {
  const map = new Map(entries.map((e) => [e.node, e]));
  const puts: string[] = [];
  const access: RosterAccess = {
    get: (n) => Promise.resolve(map.get(n)),
    put: (n) => {
      puts.push(n.node);
      map.set(n.node, n);
      return Promise.resolve();
    },
  };
  return { map, puts, roster: <T>(body: (r: RosterAccess) => Promise<T>) => body(access) };
}

/** `node add` against a fake host, roster and Serf. */
async function add(state: FakeHostState, members: Member[], roster: ReturnType<typeof fakeRoster>, extra: Partial<NodeAddOptions> = {}) {
  const { host, calls } = fakeHost(state);
  const c = capture();
  const deps: AddDeps = {
    connect: () => Promise.resolve(host),
    roster: roster.roster,
    cluster: () => Promise.resolve({ gossipKey: GOSSIP, members }),
    install: () => Promise.resolve({ installed: [], what: 'serf, mammatus-agent 0.1.0' }),
    wait: () => Promise.resolve({ line: 'debian  storage ok', joinedMs: NaN }),
  };
  const code = await nodeAddCommand(g, 'root@10.0.0.7', { role: ['storage'], ...extra }, c.io, {}, deps);
  return { code, calls, ...c };
}

const OS_RELEASE = { content: 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\n', mode: 0o644 };
const emptyHost = (): FakeHostState => ({ files: new Map([['/etc/os-release', OS_RELEASE]]), running: new Set() });

describe('node add', () => {
  it('refuses a hostname another node holds in the roster, unless --replace', async () => {
    const other = admittedNode(fixedCredentials('debian', ['compute'], 2));
    const roster = fakeRoster([other]);
    const state = emptyHost();
    const r = await add(state, [member('ctl', '10.0.0.1')], roster);
    expect(r.code).toBe(1);
    expect(r.err.at(-1)).toMatch(
      /^error: \[2\/6\] credentials failed: the roster already lists debian with another key \(U[A-Z2-7]{55}, roles compute, .*admitting this host as debian would revoke that node\. Give this host its own name with --name NAME, or take the name over with --replace$/,
    );
    expect(roster.puts).toEqual([]);
    expect(roster.map.get('debian')).toEqual(other);
    expect(state.files.has(NODE_PATHS.credentials)).toBe(false);

    const replaced = await add(state, [member('ctl', '10.0.0.1')], roster, { replace: true });
    expect(replaced.code, replaced.err.join('\n')).toBe(0);
    expect(roster.puts).toEqual(['debian']);
    expect(replaced.out.join('\n')).toMatch(/--replace: the name is taken over/);
  });

  it('refuses a name an alive Serf member holds at another address', async () => {
    const roster = fakeRoster();
    const r = await add(emptyHost(), [member('ctl', '10.0.0.1'), member('debian', '10.0.0.8')], roster);
    expect(r.code).toBe(1);
    expect(r.err.at(-1)).toMatch(/debian is an alive Serf member at 10\.0\.0\.8:7946, which is not this host: .*--name NAME/);
    expect(roster.puts).toEqual([]);
    // The same name alive at this host's address is this host.
    expect((await add(emptyHost(), [member('ctl', '10.0.0.1'), member('debian', '10.0.0.7')], roster)).code).toBe(0);
  });

  it('a re-run after another member joined changes nothing (no file written, nothing restarted)', async () => {
    const roster = fakeRoster();
    const state: FakeHostState = { ...emptyHost(), running: new Set() };
    const first = await add(state, [member('ctl', '10.0.0.1')], roster);
    expect(first.code, first.err.join('\n')).toBe(0);
    state.running.add('/run/mammatus-node/serf.pid').add('/run/mammatus-node/agent.pid');
    const again = await add(state, [member('ctl', '10.0.0.1'), member('b', '10.0.0.2')], roster);
    expect(again.code, again.err.join('\n')).toBe(0);
    expect(again.calls.filter((c) => c[0] === 'write' || c[1] === '--start' || c[1] === '--stop')).toEqual([]);
    expect(again.out.at(-1)).toMatch(/^debian: nothing to change in /);
  });

  it('says the node is admitted and its files are on the host when a later step fails', async () => {
    const { host } = fakeHost(emptyHost());
    const c = capture();
    const roster = fakeRoster();
    const code = await nodeAddCommand(
      g,
      'root@10.0.0.7',
      { role: ['storage'] },
      c.io,
      {},
      {
        connect: () => Promise.resolve(host),
        roster: roster.roster,
        cluster: () => Promise.resolve({ gossipKey: GOSSIP, members: [] }),
        install: () => Promise.reject(new Error('apt-get install exited 100')),
      },
    );
    expect(code).toBe(1);
    expect(c.err.at(-1)).toBe(
      'error: [4/6] install failed: apt-get install exited 100. debian is admitted and its files are on the host: run node add again, or node remove debian root@10.0.0.7 --purge',
    );
  });

  it('a malformed target or --port is a usage error (exit 2) before any step', async () => {
    const run = async (...argv: string[]) => {
      const c = capture();
      return { code: await runCli(['--credentials', credsFile, ...argv], c.io, {}), err: c.err.join('\n') };
    };
    expect(await run('node', 'add', 'root@bad host', '--role', 'storage')).toMatchObject({ code: 2, err: /not an SSH target/ });
    expect(await run('node', 'add', 'root@10.0.0.7', '--port', '0', '--role', 'storage')).toMatchObject({ code: 2, err: /--port/ });
    expect(await run('node', 'remove', 'web1', 'root@10.0.0.7', '--port', '70000')).toMatchObject({ code: 2, err: /--port/ });
  });
});

describe('node remove', () => {
  /** `node remove` with recording fakes; `order` lists revoke, leave and the host's commands. */
  async function remove(name: string, state: FakeHostState, purge = true) {
    const { host, calls } = fakeHost(state);
    const order: string[] = [];
    const c = capture();
    const deps: RemoveDeps = {
      connect: () => {
        order.push('ssh');
        return state.unreachable ? Promise.reject(new Error(state.unreachable)) : Promise.resolve(host);
      },
      revoke: (n) => {
        order.push(`revoke ${n}`);
        return Promise.resolve(true);
      },
      leave: (n) => {
        order.push(`leave ${n}`);
        return Promise.resolve({ changed: true, what: `${n} forced out of Serf (was failed)` });
      },
    };
    const code = await nodeRemoveCommand(g, name, 'root@10.0.0.7', { purge }, c.io, {}, deps);
    return { code, calls, order, ...c };
  }
  const hostOf = (node: string): FakeHostState => ({
    files: new Map([[NODE_PATHS.credentials, { content: JSON.stringify(fixedCredentials(node, ['storage'], 1)), mode: 0o600 }]]),
    running: new Set(['/run/mammatus-node/serf.pid', '/run/mammatus-node/agent.pid']),
  });

  it('revokes and forces the node out even when its host cannot be reached, and says so', async () => {
    const r = await remove('web1', { ...hostOf('web1'), unreachable: 'connect ETIMEDOUT 10.0.0.7:22' });
    expect(r.code).toBe(1);
    expect(r.order).toEqual(['revoke web1', 'leave web1', 'ssh']);
    expect(r.err.at(-1)).toBe('error: [3/3] purge failed: connect ETIMEDOUT 10.0.0.7:22. web1 IS revoked: every controller refuses it');
  });

  it('never stops or purges another node: the host must say it is NAME', async () => {
    const web2 = hostOf('web2');
    const r = await remove('web1', web2);
    expect(r.code).toBe(1);
    expect(r.err.at(-1)).toMatch(
      /purge failed: root@10\.0\.0\.7 is node web2, not web1: nothing stopped or purged there\. web1 IS revoked/,
    );
    expect(r.calls.filter((c) => c[0] !== 'cat')).toEqual([]);
    expect(web2.files.has(NODE_PATHS.credentials)).toBe(true);
    const unknown = await remove('web1', emptyHost());
    expect(unknown.err.at(-1)).toMatch(/cannot tell which node root@10\.0\.0\.7 is .*nothing stopped or purged there/);
  });

  it('revokes first, then stops and purges its own host', async () => {
    const web1 = hostOf('web1');
    const r = await remove('web1', web1);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.order).toEqual(['revoke web1', 'leave web1', 'ssh']);
    expect(r.out[2]).toMatch(/^\[3\/3\] purge: stopped agent, stopped serf, purged mammatus-agent/);
    expect(r.calls.some((c) => c.includes('purge') && c.includes('mammatus-agent'))).toBe(true);
    expect(web1.files.has(NODE_PATHS.credentials)).toBe(false);
  });
});
