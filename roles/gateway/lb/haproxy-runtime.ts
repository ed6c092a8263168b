/**
 * A small client of HAProxy's two command sockets (HAProxy 2.6; checked against the real one in
 * test/integration/lb-haproxy.test.ts):
 * - the admin socket (`stats socket ... level admin`, the worker's runtime API): servers are read,
 *   added, enabled, put in maintenance and deleted here, without a reload;
 * - the master socket (`-S`): `show proc` and `reload`.
 *
 * Wire rules: one command per connection, a line ending in `\n`; we half-close our side after it,
 * and HAProxy answers and closes (without the half-close the master keeps the connection open).
 * Every exchange is bounded in time and in answer size. The admin socket answers success with an
 * empty line for `enable`/`set ... state` and with a fixed sentence for `add server` (`New server
 * registered.`) and `del server` (`Server deleted.`); anything else is HAProxy's error text, which
 * `HaproxyCliError` carries.
 */
import net from 'node:net';

/** HAProxy answered a command with an error, or the socket failed or timed out. */
export class HaproxyCliError extends Error {
  override readonly name = 'HaproxyCliError';
  constructor(
    readonly command: string,
    readonly answer: string,
    options?: ErrorOptions,
  ) {
    super(`haproxy: ${command}: ${answer.trim() || 'no answer'}`, options);
  }
}

/** Bounds of one exchange. */
export interface CliLimits {
  /** Default 3000 ms. */
  readonly timeoutMs?: number;
  /** Default 1 MiB: a longer answer is an error (a runaway `show` never fills our memory). */
  readonly maxBytes?: number;
}

/** Sends one command on `socket` and returns the whole answer. */
export function haproxyCommand(socket: string, command: string, limits: CliLimits = {}): Promise<string> {
  if (/[\n;]/.test(command)) return Promise.reject(new HaproxyCliError(command, 'one command per call, no ; or newline'));
  const max = limits.maxBytes ?? 1 << 20;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const conn = net.createConnection(socket);
    const fail = (answer: string, cause?: unknown) => {
      conn.destroy();
      reject(new HaproxyCliError(command, answer, cause === undefined ? undefined : { cause }));
    };
    conn.setTimeout(limits.timeoutMs ?? 3000, () => fail(`no complete answer within ${limits.timeoutMs ?? 3000} ms`));
    conn.on('connect', () => conn.end(`${command}\n`));
    conn.on('data', (d: Buffer) => {
      size += d.length;
      if (size > max) return fail(`answer longer than ${max} bytes`);
      chunks.push(d);
    });
    conn.on('error', (err) => fail(err.message, err));
    conn.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** One line of `show servers state`. */
export interface ServerState {
  readonly backend: string;
  readonly server: string;
  readonly addr: string;
  readonly port: number;
  /** 0 stopped (down), 1 starting, 2 running (up), 3 soft-stopping. */
  readonly opState: number;
  /** Bit field; bit 0x01/0x02/0x04 set = in maintenance (forced, inherited, by resolution). */
  readonly adminState: number;
  /** True when up and not in maintenance. */
  readonly up: boolean;
}

/** Parses `show servers state` (format version 1; its header names the columns). */
export function parseServersState(text: string): ServerState[] {
  const lines = text.split('\n');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) return [];
  const cols = header.slice(2).split(' ');
  const at = (name: string) => cols.indexOf(name);
  const out: ServerState[] = [];
  for (const line of lines) {
    if (!line.trim() || line.startsWith('#') || /^\d+$/.test(line.trim())) continue;
    const f = line.split(' ');
    const opState = Number(f[at('srv_op_state')]);
    const adminState = Number(f[at('srv_admin_state')]);
    out.push({
      backend: f[at('be_name')],
      server: f[at('srv_name')],
      addr: f[at('srv_addr')],
      port: Number(f[at('srv_port')]),
      opState,
      adminState,
      up: opState === 2 && (adminState & 0x07) === 0,
    });
  }
  return out;
}

/** The admin socket's commands we use. */
export class HaproxyRuntime {
  constructor(
    private readonly socket: string,
    private readonly limits: CliLimits = {},
  ) {}

  /** Any command, raw answer. */
  command(cmd: string): Promise<string> {
    return haproxyCommand(this.socket, cmd, this.limits);
  }

  /** Every server of every backend (or of one). */
  async serversState(backend?: string): Promise<ServerState[]> {
    return parseServersState(await this.command(backend ? `show servers state ${backend}` : 'show servers state'));
  }

  /** `show info` as key → value; its answering is the worker's health. */
  async info(): Promise<Record<string, string>> {
    const text = await this.command('show info');
    const info: Record<string, string> = {};
    for (const line of text.split('\n')) {
      const i = line.indexOf(': ');
      if (i > 0) info[line.slice(0, i)] = line.slice(i + 2);
    }
    if (!info.Pid) throw new HaproxyCliError('show info', text);
    return info;
  }

  /**
   * Adds a server, then turns its health check and itself on (a server added at run time starts in
   * maintenance). `options` must be the file's own (`serverOptions`): no `default-server` applies.
   * A server of that name still there (left in maintenance by `removeServer`) is moved to the
   * address and made ready instead.
   */
  async addServer(backend: string, server: string, address: string, options: string): Promise<void> {
    const cmd = `add server ${backend}/${server} ${address} ${options}`;
    const answer = (await this.command(cmd)).trim();
    if (/^Already exists/.test(answer)) {
      const m = /^\[?(.*?)\]?:(\d+)$/.exec(address);
      if (!m) throw new HaproxyCliError(cmd, answer);
      await this.setAddress(backend, server, m[1], Number(m[2]));
    } else if (!/^New server registered\./.test(answer)) throw new HaproxyCliError(cmd, answer);
    if (/\bcheck\b/.test(options)) await this.expectEmpty(`enable health ${backend}/${server}`);
    await this.setReady(backend, server);
  }

  /** Puts a server in maintenance. */
  setMaint(backend: string, server: string): Promise<void> {
    return this.expectEmpty(`set server ${backend}/${server} state maint`);
  }

  /** Takes a server out of maintenance. */
  setReady(backend: string, server: string): Promise<void> {
    return this.expectEmpty(`set server ${backend}/${server} state ready`);
  }

  /** Moves a server to another address, keeping its name and counters. */
  async setAddress(backend: string, server: string, addr: string, port: number): Promise<void> {
    const answer = await this.command(`set server ${backend}/${server} addr ${addr} port ${port}`);
    if (!/changed|no need to change/i.test(answer)) throw new HaproxyCliError(`set server ${backend}/${server} addr`, answer);
  }

  /**
   * Removes a server: maintenance first (no new connection goes to it, running ones finish), then
   * `del server`, which HAProxy refuses while the server still has connections, idle ones kept for
   * reuse included (they close after the server's keep-alive timeout or HAProxy's purge delay,
   * seconds). Retried for `drainMs`; after that the server stays in maintenance, which takes it out
   * of the balance just as well, and the next reload drops it (the files no longer name it).
   */
  async removeServer(backend: string, server: string, drainMs = 2000): Promise<'deleted' | 'maint'> {
    await this.setMaint(backend, server);
    const deadline = Date.now() + drainMs;
    for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
      const answer = await this.command(`del server ${backend}/${server}`);
      if (/^Server deleted\./.test(answer)) return 'deleted';
      if (!/connections|queue/i.test(answer)) throw new HaproxyCliError(`del server ${backend}/${server}`, answer);
      if (Date.now() + wait > deadline) return 'maint';
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  private async expectEmpty(cmd: string): Promise<void> {
    const answer = await this.command(cmd);
    if (answer.trim() !== '') throw new HaproxyCliError(cmd, answer);
  }
}

/** One line of the master's `show proc`. */
export interface ProcLine {
  readonly pid: number;
  /** `master` or `worker` (or `program`). */
  readonly type: string;
  /** For the master: reloads so far; for a worker: how many reloads ago it was started (0 = current). */
  readonly reloads: number;
  /** For the master: how many reloads failed (`[failed: N]`). */
  readonly failed?: number;
}

/** Parses the master's `show proc`. */
export function parseShowProc(text: string): ProcLine[] {
  const out: ProcLine[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+)\s+(\S+)\s+(\d+)(?:\s+\[failed: (\d+)\])?/.exec(line);
    if (m) out.push({ pid: Number(m[1]), type: m[2], reloads: Number(m[3]), ...(m[4] ? { failed: Number(m[4]) } : {}) });
  }
  return out;
}

/** The master socket's commands we use. */
export class HaproxyMaster {
  constructor(
    private readonly socket: string,
    private readonly limits: CliLimits = {},
  ) {}

  /** The master and its workers. */
  async processes(): Promise<ProcLine[]> {
    return parseShowProc(await haproxyCommand(this.socket, 'show proc', this.limits));
  }

  /** The PID of the current worker (started by the last reload), if one runs. */
  async currentWorker(): Promise<number | undefined> {
    return (await this.processes()).find((p) => p.type === 'worker' && p.reloads === 0)?.pid;
  }

  /**
   * Asks for a reload. HAProxy 2.6 re-executes the master and closes the connection without a
   * status: the caller checks `show proc` for a new current worker.
   */
  async reload(): Promise<void> {
    await haproxyCommand(this.socket, 'reload', this.limits);
  }
}
