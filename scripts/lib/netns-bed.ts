/**
 * A network-namespace test bed for the gateway role: a client `cl` (gets its address
 * by DHCP), a second LAN host `ctl` (10.88.0.10), a switch `sw` (bridge br0), the gateway `gw`
 * (gw-lan 10.88.0.1/24 on the bridge, gw-wan 203.0.113.2/24) and an upstream `up` (203.0.113.1/24,
 * a fake DNS server and a tiny HTTP server on demand).
 *
 * Nothing touches the root namespace: namespace names are unique per bed (`<prefix><random>-gw`),
 * and every veth is created directly inside its namespaces, so the fixed interface names below
 * (gw-lan, cl-lan, …; all ≤ 15 chars) cannot collide between beds running at the same time.
 * The bed deliberately leaves ip_forward off and iptables empty in `gw`: that is the code under test.
 *
 * Processes are started with `ip netns exec` (argv arrays, never a shell string), recorded, and killed
 * one by one in `destroy()` (SIGTERM, then SIGKILL), which then deletes the namespaces. `destroy()` is
 * idempotent and also runs (synchronously, SIGKILL) when the test process exits.
 */
import { execFile, execFileSync, spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorMessage } from '../../core/errors.js';
import { sleep } from './wait.js';
import { findOnPath } from './daemon.js';

/** Roles of the namespaces in the bed. */
export type NsKey = 'sw' | 'gw' | 'cl' | 'ctl' | 'up';
const NS_KEYS: readonly NsKey[] = ['sw', 'gw', 'cl', 'ctl', 'up'];

/** Interface names inside their namespace (fixed: see the header). */
export const IFACES = {
  /** In sw: the bridge and the switch-side veth ends. */
  br: 'br0',
  swGw: 'p-gw',
  swCl: 'p-cl',
  swCtl: 'p-ctl',
  /** In gw. */
  gwLan: 'gw-lan',
  gwWan: 'gw-wan',
  /** In cl / ctl / up. */
  clLan: 'cl-lan',
  ctlLan: 'ctl-lan',
  upWan: 'up-eth0',
} as const;

/** Addresses used by the bed. */
export const ADDRS = {
  lanNet: '10.88.0.0/24',
  gwLan: '10.88.0.1',
  ctl: '10.88.0.10',
  gwWan: '203.0.113.2',
  up: '203.0.113.1',
  /** What the fake upstream DNS answers for example.test. */
  exampleTest: '203.0.113.80',
} as const;

export interface ExecResult {
  /** Exit code; 124 when the timeout killed the command (like coreutils `timeout`). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Default 10 000 ms. */
  timeoutMs?: number;
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string>;
}

export interface Upstream {
  /** The fake upstream DNS server's query log (dnsmasq --log-queries). */
  dnsLog(): string;
  /** One line per HTTP request: `<remote address> <method> <url>`. */
  httpLog(): string;
}

export interface DhcpOptions {
  /** Set cl-lan's MAC before asking (e.g. to hit a reservation). */
  mac?: string;
  /** Sent as option 12 (`-x hostname:NAME`). */
  hostname?: string;
  /** Raw extra udhcpc arguments, e.g. ['-x', '0x5d:0007'] or ['-V', 'PXEClient:Arch:00000:UNDI:002001']. */
  options?: string[];
  /** udhcpc -t (discover attempts, default 3) and -T (seconds between them, default 2). dnsmasq pings an
   * address for up to 3 s before its first OFFER of it, so -T 1 -t 3 gives up just before the offer. */
  tries?: number;
  intervalS?: number;
  timeoutMs?: number;
}

export interface DhcpResult {
  /** udhcpc's exit code (0 = lease obtained). */
  code: number;
  /** Hook events in order (deconfig, bound, renew, leasefail, nak, …). */
  events: string[];
  ip?: string;
  /** Prefix length, e.g. '24'. */
  mask?: string;
  router?: string;
  dns?: string;
  domain?: string;
  bootFile?: string;
  siaddr?: string;
  hostname?: string;
  lease?: string;
  serverid?: string;
  /** Every key=value the hook printed for the last bound/renew. */
  env: Record<string, string>;
  stdout: string;
  stderr: string;
}

export interface DigResult {
  /** 'NOERROR', 'NXDOMAIN', 'SERVFAIL', 'REFUSED', … or 'NOREPLY' (dig exit 9: timeout or ICMP refused). */
  status: string;
  /** RDATA of each answer record, e.g. ['203.0.113.80']. */
  answers: string[];
  code: number;
  stdout: string;
}

export interface CurlResult {
  /** curl's exit code: 0 ok, 7 refused/unreachable, 28 timeout. */
  code: number;
  /** HTTP status, 0 when there was no response. */
  status: number;
  body: string;
}

/** A tracked child process; its stdout and stderr go to `logFile`. */
export type BedProcess = ChildProcess & { readonly logFile: string };

export interface GatewayBed extends AsyncDisposable {
  /** Unique per bed; every namespace name starts with it. */
  readonly id: string;
  /** Namespace names. */
  readonly ns: Readonly<Record<NsKey, string>>;
  readonly ifaces: typeof IFACES;
  readonly addrs: typeof ADDRS;
  /** A temp directory for logs, scripts, lease files; removed by destroy(). */
  readonly dir: string;
  /** `ip netns exec NS ...argv`; never throws on a non-zero exit. */
  exec(ns: NsKey, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a tracked process in NS (output to logFile, default `<dir>/<ns>-<cmd>-<n>.log`). */
  spawn(ns: NsKey, argv: readonly string[], logFile?: string): BedProcess;
  /** Stops one tracked process (SIGTERM, then SIGKILL after 2 s) and waits for it. */
  kill(proc: ChildProcess): Promise<void>;
  /** Starts the fake upstream DNS (203.0.113.1:53, example.test → 203.0.113.80) and HTTP server (:80). */
  startUpstream(): Promise<Upstream>;
  /** Gives `up` a route to 10.88.0.0/24 via gw-wan (for the WAN→LAN-blocked test). */
  addUpstreamRouteToLan(): Promise<void>;
  /** Runs busybox udhcpc on cl-lan; the hook configures the address and default route. */
  dhcp(opts?: DhcpOptions): Promise<DhcpResult>;
  /** dig from a namespace (default cl) at a server (default the gateway). */
  dig(name: string, type?: string, server?: string, from?: NsKey): Promise<DigResult>;
  /** curl from a namespace; `timeoutS` default 5. */
  curl(ns: NsKey, url: string, opts?: { timeoutS?: number; args?: string[] }): Promise<CurlResult>;
  /** Kills every tracked process, deletes every namespace and the temp dir; idempotent. */
  destroy(): Promise<void>;
}

// PATH only: `ip netns exec` resolves argv[0] through the same PATH.
const findTool = (name: string): string | undefined => findOnPath(name);

/** A skip reason naming the tools missing from PATH, or undefined. */
export function missingTools(tools: readonly string[]): string | undefined {
  const missing = tools.filter((t) => !findTool(t));
  return missing.length ? `missing tools: ${missing.join(', ')}` : undefined;
}

let netnsReason: string | undefined | null = null;

/** Why network-namespace tests cannot run here (not root, no `ip`, `ip netns add` fails), or undefined. */
export function canUseNetns(): string | undefined {
  if (netnsReason !== null) return netnsReason;
  netnsReason = probeNetns();
  return netnsReason;
}

function probeNetns(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network-namespace tests need root';
  if (!findTool('ip')) return 'the ip command is missing (apt-get install iproute2)';
  const probe = `nsprobe-${process.pid}-${randomBytes(2).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe', timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    return `ip netns add fails: ${e.stderr?.toString().trim() || String(err)}`;
  }
  try {
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe', timeout: 10_000 });
  } catch {
    /* best effort */
  }
  return undefined;
}

function run(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 10_000, maxBuffer: 16 * 1024 * 1024, env: opts.env ? { ...process.env, ...opts.env } : process.env },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string | null };
        const code = typeof e.code === 'number' ? e.code : e.killed || e.signal ? 124 : 127;
        resolve({ code, stdout, stderr: stderr || e.message });
      },
    );
  });
}

async function ip(args: readonly string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/** Polls `file` until its content matches `re`; throws with the content after `timeoutMs`. */
export async function waitForFile(file: string, re: RegExp, timeoutMs = 5_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (re.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`${file} did not match ${re} within ${timeoutMs} ms:\n${text}`);
    await sleep(50);
  }
}

const alive = (p: ChildProcess) => p.pid !== undefined && p.exitCode === null && p.signalCode === null;

function waitExit(p: ChildProcess, ms: number): Promise<boolean> {
  if (!alive(p)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(!alive(p)), ms);
    p.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

// Prints the udhcpc environment to $BED_DHCP_OUT and configures the address and default route.
const DHCP_HOOK = `#!/bin/sh
out="$BED_DHCP_OUT"
echo "event=$1" >> "$out"
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    for k in interface ip subnet mask router dns domain boot_file siaddr sname hostname lease serverid; do
      eval "v=\\\${$k-}"
      echo "$k=$v" >> "$out"
    done
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    set -- $router
    if [ -n "$1" ]; then ip route replace default via "$1" dev "$interface"; fi
    ;;
esac
exit 0
`;

// The upstream HTTP server: logs each request's remote address, answers "upstream ok".
const HTTP_SERVER = `
const http = require('node:http');
const fs = require('node:fs');
const [log, host] = process.argv.slice(1);
http.createServer((req, res) => {
  fs.appendFileSync(log, req.socket.remoteAddress + ' ' + req.method + ' ' + req.url + '\\n');
  res.end('upstream ok\\n');
}).listen(80, host, () => console.log('listening'));
`;

/** Builds the topology. Throws (after cleaning up) when a step fails. */
export async function buildGatewayBed(opts: { prefix?: string } = {}): Promise<GatewayBed> {
  const prefix = opts.prefix ?? 'gwt';
  if (!/^[a-z][a-z0-9]{0,7}$/.test(prefix)) throw new Error(`bad netns prefix ${JSON.stringify(prefix)}: 1-8 of [a-z0-9]`);
  const id = prefix + randomBytes(3).toString('hex');
  const ns = Object.fromEntries(NS_KEYS.map((k) => [k, `${id}-${k}`])) as Record<NsKey, string>;
  const dir = mkdtempSync(path.join(os.tmpdir(), `netns-${id}-`));
  const procs = new Set<BedProcess>();
  const created: string[] = [];
  let counter = 0;
  let destroying: Promise<void> | undefined;

  const killStrays = async (name: string) => {
    const r = await run('ip', ['netns', 'pids', name]);
    for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  };

  const exitCleanup = () => {
    for (const p of procs) if (alive(p)) p.kill('SIGKILL');
    for (const name of created) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', name], { stdio: 'pipe', timeout: 5_000 }).toString();
        for (const pid of pids.split(/\s+/).filter(Boolean).map(Number)) process.kill(pid, 'SIGKILL');
      } catch {
        /* best effort */
      }
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe', timeout: 5_000 });
      } catch {
        /* best effort */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', exitCleanup);

  const bed: GatewayBed = {
    /** Stops it when a test's `await using` scope ends. */
    [Symbol.asyncDispose](this: GatewayBed) {
      return this.destroy();
    },
    id,
    ns,
    ifaces: IFACES,
    addrs: ADDRS,
    dir,
    exec: (key, argv, o) => run('ip', ['netns', 'exec', ns[key], ...argv], o),
    spawn(key, argv, logFile) {
      if (destroying) throw new Error('bed is destroyed');
      const file = logFile ?? path.join(dir, `${key}-${path.basename(argv[0] ?? 'cmd')}-${++counter}.log`);
      const fd = openSync(file, 'a');
      try {
        const child = spawnChild('ip', ['netns', 'exec', ns[key], ...argv], { stdio: ['ignore', fd, fd] });
        child.on('error', () => undefined);
        const p = Object.assign(child, { logFile: file });
        procs.add(p);
        return p;
      } finally {
        closeSync(fd);
      }
    },
    async kill(proc) {
      if (!alive(proc)) return;
      proc.kill('SIGTERM');
      if (!(await waitExit(proc, 2_000))) {
        proc.kill('SIGKILL');
        await waitExit(proc, 2_000);
      }
    },
    async startUpstream() {
      const dnsLog = path.join(dir, 'up-dns.log');
      const httpLog = path.join(dir, 'up-http.log');
      writeFileSync(httpLog, '');
      // dnsmasq drops root to nobody; let it write its log in our 0700 temp dir.
      writeFileSync(dnsLog, '');
      chmodSync(dnsLog, 0o666);
      const dns = bed.spawn('up', [
        'dnsmasq',
        '--no-daemon',
        '--conf-file=/dev/null',
        '--port=53',
        `--listen-address=${ADDRS.up}`,
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        '--log-queries',
        `--log-facility=${dnsLog}`,
        `--address=/example.test/${ADDRS.exampleTest}`,
        `--pid-file=${path.join(dir, 'up-dnsmasq.pid')}`,
      ]);
      const http = bed.spawn('up', [process.execPath, '-e', HTTP_SERVER, httpLog, ADDRS.up]);
      try {
        await waitForFile(dnsLog, /started, version/);
        await waitForFile(http.logFile, /listening/);
      } catch (err) {
        throw new Error(`upstream did not start: ${errorMessage(err)}\n${readFileSync(dns.logFile, 'utf8')}`, { cause: err });
      }
      return { dnsLog: () => readFileSync(dnsLog, 'utf8'), httpLog: () => readFileSync(httpLog, 'utf8') };
    },
    addUpstreamRouteToLan: () => ip(['-n', ns.up, 'route', 'replace', ADDRS.lanNet, 'via', ADDRS.gwWan]),
    async dhcp(o = {}) {
      const hook = path.join(dir, 'udhcpc-hook.sh');
      if (!existsSync(hook)) {
        writeFileSync(hook, DHCP_HOOK);
        chmodSync(hook, 0o755);
      }
      if (o.mac) await ip(['-n', ns.cl, 'link', 'set', IFACES.clLan, 'address', o.mac]);
      const out = path.join(dir, `dhcp-${++counter}.out`);
      writeFileSync(out, '');
      const args = [
        'busybox',
        'udhcpc',
        '-i',
        IFACES.clLan,
        '-n',
        '-q',
        '-t',
        String(o.tries ?? 3),
        '-T',
        String(o.intervalS ?? 2),
        '-s',
        hook,
      ];
      if (o.hostname) args.push('-x', `hostname:${o.hostname}`);
      args.push(...(o.options ?? []));
      const r = await bed.exec('cl', args, { timeoutMs: o.timeoutMs ?? 20_000, env: { BED_DHCP_OUT: out } });
      const events: string[] = [];
      let env: Record<string, string> = {};
      for (const line of readFileSync(out, 'utf8').split('\n')) {
        const eq = line.indexOf('=');
        if (eq < 0) continue;
        const [k, v] = [line.slice(0, eq), line.slice(eq + 1)];
        if (k === 'event') {
          events.push(v);
          if (v === 'bound' || v === 'renew') env = {};
        } else env[k] = v;
      }
      const get = (k: string) => (env[k] ? env[k] : undefined);
      return {
        code: r.code,
        events,
        env,
        stdout: r.stdout,
        stderr: r.stderr,
        ip: get('ip'),
        mask: get('mask'),
        router: get('router'),
        dns: get('dns'),
        domain: get('domain'),
        bootFile: get('boot_file'),
        siaddr: get('siaddr'),
        hostname: get('hostname'),
        lease: get('lease'),
        serverid: get('serverid'),
      };
    },
    async dig(name, type = 'A', server = ADDRS.gwLan, from = 'cl') {
      const r = await bed.exec(from, ['dig', '-r', '+time=2', '+tries=1', '+noall', '+comments', '+answer', `@${server}`, name, type]);
      const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? (r.code === 9 ? 'NOREPLY' : `ERROR(${r.code})`);
      const answers = r.stdout
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith(';'))
        .map((l) => l.trim().split(/\s+/).slice(4).join(' '));
      return { status, answers, code: r.code, stdout: r.stdout };
    },
    async curl(key, url, o = {}) {
      const t = o.timeoutS ?? 5;
      const r = await bed.exec(
        key,
        ['curl', '-q', '-sS', '--noproxy', '*', '-m', String(t), '-w', '\n%{http_code}', ...(o.args ?? []), url],
        {
          timeoutMs: (t + 5) * 1000,
        },
      );
      const nl = r.stdout.lastIndexOf('\n');
      return { code: r.code, status: Number(r.stdout.slice(nl + 1)) || 0, body: nl < 0 ? '' : r.stdout.slice(0, nl) };
    },
    destroy() {
      destroying ??= (async () => {
        const errors: string[] = [];
        await Promise.all([...procs].map((p) => bed.kill(p)));
        for (const name of created) {
          await killStrays(name);
          const r = await run('ip', ['netns', 'del', name]);
          if (r.code !== 0) errors.push(`ip netns del ${name}: ${r.stderr.trim()}`);
        }
        rmSync(dir, { recursive: true, force: true });
        process.off('exit', exitCleanup);
        if (errors.length) throw new Error(`netns bed cleanup: ${errors.join('; ')}`);
      })();
      return destroying;
    },
  };

  try {
    for (const k of NS_KEYS) {
      await ip(['netns', 'add', ns[k]]);
      created.push(ns[k]);
      await ip(['-n', ns[k], 'link', 'set', 'lo', 'up']);
    }
    await ip(['-n', ns.sw, 'link', 'add', IFACES.br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    await ip(['-n', ns.sw, 'link', 'set', IFACES.br, 'up']);
    const legs: [NsKey, string, string][] = [
      ['gw', IFACES.gwLan, IFACES.swGw],
      ['cl', IFACES.clLan, IFACES.swCl],
      ['ctl', IFACES.ctlLan, IFACES.swCtl],
    ];
    for (const [k, inner, port] of legs) {
      await ip(['link', 'add', inner, 'netns', ns[k], 'type', 'veth', 'peer', 'name', port, 'netns', ns.sw]);
      await ip(['-n', ns.sw, 'link', 'set', port, 'master', IFACES.br]);
      await ip(['-n', ns.sw, 'link', 'set', port, 'up']);
      await ip(['-n', ns[k], 'link', 'set', inner, 'up']);
    }
    await ip(['link', 'add', IFACES.gwWan, 'netns', ns.gw, 'type', 'veth', 'peer', 'name', IFACES.upWan, 'netns', ns.up]);
    await ip(['-n', ns.up, 'addr', 'add', `${ADDRS.up}/24`, 'dev', IFACES.upWan]);
    await ip(['-n', ns.up, 'link', 'set', IFACES.upWan, 'up']);
    await ip(['-n', ns.gw, 'addr', 'add', `${ADDRS.gwLan}/24`, 'dev', IFACES.gwLan]);
    await ip(['-n', ns.gw, 'addr', 'add', `${ADDRS.gwWan}/24`, 'dev', IFACES.gwWan]);
    await ip(['-n', ns.gw, 'link', 'set', IFACES.gwWan, 'up']);
    await ip(['-n', ns.gw, 'route', 'add', 'default', 'via', ADDRS.up]);
    await ip(['-n', ns.ctl, 'addr', 'add', `${ADDRS.ctl}/24`, 'dev', IFACES.ctlLan]);
    await ip(['-n', ns.ctl, 'route', 'add', 'default', 'via', ADDRS.gwLan]);
  } catch (err) {
    await bed.destroy().catch(() => undefined);
    throw err;
  }
  return bed;
}
