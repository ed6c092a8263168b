/**
 * A root agent runs its controller's nats-server as the system user `nats` (issue 16): a real serf
 * agent, the agent bundle and Debian's nats-server; the server's /proc status shows the nats uid
 * and gid, the config file (0600, it holds the route secret and the users' keys) and the JetStream
 * store belong to nats, and JetStream answers. Needs root and the `nats` user (Debian's nats-server
 * package creates it); skipped with the reason otherwise.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findPasswdUser } from '../../core/users.js';
import { startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { TestTrust, natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually } from '../../scripts/lib/wait.js';
import { skipReason } from './harness.js';

const nats = findPasswdUser(readFileSync('/etc/passwd', 'utf8'), 'nats');
const skip =
  skipReason() ??
  (process.geteuid?.() !== 0 ? 'needs root (only a root agent switches users)' : undefined) ??
  (natsServerAvailable() ? undefined : 'nats-server is not installed (apt-get install nats-server)') ??
  (nats ? undefined : 'no system user nats (apt-get install nats-server creates it)');
if (skip) console.warn(`controller nats user test skipped: ${skip}`);

/** The real, effective, saved and filesystem ids of a process (`Uid:` or `Gid:` of /proc/PID/status). */
function ids(pid: number, field: 'Uid' | 'Gid'): number[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return line!.split(/\s+/).slice(1, 5).map(Number);
}

describe.skipIf(Boolean(skip))('controller: nats-server runs as the nats user', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ctl-user-'));
  // The user must be able to enter the test's directories, as it can /var/lib/mammatus and /etc/mammatus.
  chmodSync(root, 0o755);
  let serf: SerfAgent | undefined;
  let agent: MammatusAgent | undefined;
  const natsPids = new Set<number>();

  afterAll(async () => {
    for (const l of agent?.logLines() ?? []) if (typeof l.nats_pid === 'number') natsPids.add(l.nats_pid);
    await agent?.stop();
    await serf?.stop();
    for (const pid of natsPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it('its process has the nats uid and gid; its config and store belong to nats; JetStream answers', { timeout: 120_000 }, async () => {
    const [client, cluster, monitor, sqsPort, metadataPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    serf = await startSerfAgent({ name: 'ctl-user', dir: path.join(root, 'serf'), tags: { role: 'controller' } });
    const files = path.join(root, 'controller');
    const conf = path.join(files, 'nats-server.conf');
    const store = path.join(files, 'nats');
    agent = await startMammatusAgent({
      dir: path.join(root, 'agent'),
      rpcAddr: serf.rpcAddr,
      credentials: new TestTrust().mint('ctl-user', ['controller']),
      extraYaml: [
        'watch_config: false',
        'trust: { allow_plain_serf: true }',
        'roles:',
        '  controller:',
        `    nats: { listen: "127.0.0.1:${client}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${JSON.stringify(store)} }`,
        `    paths: { nats_conf: ${JSON.stringify(conf)}, members: ${JSON.stringify(path.join(files, 'members'))}, roster: ${JSON.stringify(path.join(files, 'roster.json'))}, firewall: ${JSON.stringify(path.join(files, 'firewall.rules'))} }`,
        '    firewall: { enabled: false }',
        `metadata: { listen: "127.0.0.1:${metadataPort}", proxy_secret: "${'05'.repeat(32)}" }`,
        'messaging:',
        `  listen: "127.0.0.1:${sqsPort}"`,
        '  credentials:',
        '    - { access_key_id: AKIDUSER, secret_access_key: user-test-secret }',
      ].join('\n'),
    });
    const a = agent;
    const started = await eventually(() => {
      const line = a.logLines().find((l) => l.msg === 'nats-server started');
      expect(line, 'a "nats-server started" log line').toBeDefined();
      return line!;
    }, 60_000);
    expect(started.user).toBe('nats');
    const pid = started.nats_pid as number;
    natsPids.add(pid);
    expect(ids(pid, 'Uid')).toEqual([nats!.uid, nats!.uid, nats!.uid, nats!.uid]);
    expect(ids(pid, 'Gid')).toEqual([nats!.gid, nats!.gid, nats!.gid, nats!.gid]);
    // No supplementary group of the agent's (root's) stays with it.
    const groups = /^Groups:[ \t]*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1].trim();
    expect(groups === '' || groups === String(nats!.gid), `Groups: ${groups}`).toBe(true);

    const c = statSync(conf);
    expect([c.uid, c.mode & 0o777]).toEqual([nats!.uid, 0o600]);
    // JetStream works from the store the user was given.
    await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${monitor}/healthz?js-enabled-only=true`);
      expect(res.status).toBe(200);
    }, 60_000);
    await eventually(() => expect(statSync(path.join(store, 'jetstream')).uid).toBe(nats!.uid), 30_000);
    expect(statSync(store).uid).toBe(nats!.uid);
  });
});
