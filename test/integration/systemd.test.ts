/**
 * The agent speaks systemd: READY=1 once ready, RELOADING=1/READY=1 around a SIGHUP reload,
 * STOPPING=1 on SIGTERM — sent with the real systemd-notify to a NOTIFY_SOCKET the test listens on
 * (a small Python datagram listener, since Node cannot open AF_UNIX datagram sockets).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLogger } from '../../core/logger.js';
import { startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { skipReason } from './harness.js';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip =
  skipReason() ?? (has('systemd-notify') ? undefined : 'systemd-notify is missing') ?? (has('python3') ? undefined : 'python3 is missing');
if (skip) console.warn(`systemd tests skipped: ${skip}`);

// Receives notify datagrams, prints each on one line, and closes passed descriptors (the BARRIER
// systemd-notify waits on) as systemd does.
const LISTENER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(64))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for i in range(0, len(payload) - len(payload) % 4, 4):
                os.close(int.from_bytes(payload[i:i+4], sys.byteorder))
    print(data.decode().replace("\\n", " "), flush=True)
`;

describe.skipIf(Boolean(skip))('systemd integration', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-sd-'));
  const socketPath = path.join(tmp, 'notify.sock');
  const lines: string[] = [];
  let listener: ChildProcess;
  let serf: SerfAgent;
  let agent: MammatusAgent;

  beforeAll(async () => {
    writeFileSync(path.join(tmp, 'listener.py'), LISTENER);
    listener = spawn('python3', [path.join(tmp, 'listener.py'), socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => {
      listener.stdout!.on('data', (chunk: Buffer) => {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        if (lines.includes('listening')) resolve();
      });
    });
    serf = await startSerfAgent({ name: 'sd', dir: path.join(tmp, 'serf') });
    agent = await startMammatusAgent({
      dir: path.join(tmp, 'agent'),
      rpcAddr: serf.rpcAddr,
      env: { ...process.env, NOTIFY_SOCKET: socketPath },
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await serf?.stop();
    listener?.kill();
    rmSync(tmp, { recursive: true, force: true });
  });

  const waitFor = async (text: string, after = 0) => {
    for (let i = 0; i < 100; i++) {
      if (lines.slice(after).some((l) => l.includes(text))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no "${text}" notification; got ${JSON.stringify(lines)}`);
  };

  it('sends READY=1 with a status once ready', async () => {
    await waitFor('READY=1');
    expect(lines.find((l) => l.includes('READY=1'))).toMatch(/STATUS=ready, version \d/);
  });

  it('sends RELOADING=1 then READY=1 around a SIGHUP reload, and STOPPING=1 on SIGTERM', async () => {
    const mark = lines.length;
    agent.process.kill('SIGHUP');
    await waitFor('RELOADING=1', mark);
    await waitFor('READY=1', mark + 1);
    expect(await agent.stop()).toBe(0);
    await waitFor('STOPPING=1', mark);
  });

  it('prefixes log lines with the syslog priority journald reads when JOURNAL_STREAM is set', () => {
    const out: string[] = [];
    const log = buildLogger('debug', { journal: true, dest: { write: (s: string) => void out.push(s) } });
    log.info('i');
    log.warn('w');
    log.error('e');
    expect(out.map((l) => l.slice(0, 3))).toEqual(['<6>', '<4>', '<3>']);
    expect(JSON.parse(out[0].slice(3))).toMatchObject({ msg: 'i' });
  });
});
