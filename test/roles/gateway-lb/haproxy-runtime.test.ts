/**
 * The HAProxy socket client: parsing the answers of HAProxy 2.6 (captured from the real one) and
 * the bounds of one exchange, against a fake socket for the edge cases HAProxy does not produce on
 * demand (a silent server, a runaway answer). The real sockets are in test/integration/lb-haproxy.
 */
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { haproxyCommand, HaproxyCliError, parseServersState, parseShowProc } from '../../../roles/gateway/lb/haproxy-runtime.js';

const STATE = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
4 b 1 s1 ::1 0 0 1 1 2 8 2 0 6 0 0 0 - 9000 - 0 0 - - 0
4 b 2 s2 127.0.0.1 2 0 1 1 1 8 2 0 6 0 0 0 - 9001 - 0 0 - - 0
4 b 3 s3 127.0.0.1 2 1 1 1 0 1 0 2 6 0 0 0 - 9003 - 0 0 - - 0

`;

const PROC = `#<PID>          <type>          <reloads>       <uptime>        <version>
31975           master          2 [failed: 0]   0d00h10m17s     2.6.12-1+deb12u4
# workers
12671           worker          0               0d00h00m01s     2.6.12-1+deb12u4
12329           worker          1               0d00h00m09s     2.6.12-1+deb12u4
# programs

`;

describe('parsing', () => {
  it('show servers state: down, up, and up but in maintenance', () => {
    expect(parseServersState(STATE).map((s) => [s.server, s.addr, s.port, s.up])).toEqual([
      ['s1', '::1', 9000, false],
      ['s2', '127.0.0.1', 9001, true],
      ['s3', '127.0.0.1', 9003, false],
    ]);
    expect(parseServersState('No such backend.\n')).toEqual([]);
  });

  it('show proc: the master with its failed count, the current and the old worker', () => {
    expect(parseShowProc(PROC)).toEqual([
      { pid: 31975, type: 'master', reloads: 2, failed: 0 },
      { pid: 12671, type: 'worker', reloads: 0 },
      { pid: 12329, type: 'worker', reloads: 1 },
    ]);
  });
});

describe('haproxyCommand bounds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const serve = async (name: string, onData: (c: net.Socket, line: string) => void): Promise<[string, net.Server]> => {
    const path = join(dir, name);
    // Half-open allowed, as HAProxy: our FIN must not end its side before it answered.
    const server = net.createServer({ allowHalfOpen: true }, (c) => c.on('data', (d) => onData(c, d.toString())));
    await new Promise<void>((r) => server.listen(path, r));
    return [path, server];
  };

  it('sends one line, half-closes, returns the answer at close', async () => {
    const [path, server] = await serve('echo.sock', (c, line) => c.end(`got ${line}`));
    expect(await haproxyCommand(path, 'show info')).toBe('got show info\n');
    server.close();
  });

  it('a silent socket times out, a runaway answer is cut, a missing socket fails', async () => {
    const [silent, s1] = await serve('silent.sock', () => undefined);
    await expect(haproxyCommand(silent, 'show info', { timeoutMs: 100 })).rejects.toThrow(/no complete answer within 100 ms/);
    const [flood, s2] = await serve('flood.sock', (c) => c.end(Buffer.alloc(4096, 'x')));
    await expect(haproxyCommand(flood, 'show stat', { maxBytes: 1000 })).rejects.toThrow(/longer than 1000 bytes/);
    await expect(haproxyCommand(join(dir, 'none.sock'), 'show info')).rejects.toBeInstanceOf(HaproxyCliError);
    await expect(haproxyCommand(silent, 'show info; reload')).rejects.toThrow(/one command per call/);
    s1.close();
    s2.close();
  });
});
