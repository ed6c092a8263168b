/**
 * Storage (issue 18): read throughput through tgt against the same backing file read directly, and
 * `mammatus volume create` → the target answering a CHAP login, with the storage agent's share.
 *
 *   npx tsx bench/storage.ts        # as root: network namespaces and a tgtd of its own; ~1.5 min
 *
 * Set-up: the bed of test/integration/storage-tgt.test.ts (scripts/lib/tgt-bed.ts, namespaces
 * `tgt<hex>-st|cp|fx`, tgtd in `st` on a control port of its own, portal 10.87.0.1:3260), libiscsi's
 * userspace initiator in `cp`. Nothing touches a tgtd of the host.
 *
 * 1. Throughput. A BENCH_ST_SIZE_MB file, filled with random data (a hole reads as zeros without
 *    touching anything), served as LUN 1 of a target rendered and applied by the storage role's
 *    tgt code (renderTgt/applyTgt, with CHAP and the compute initiator's ACL). iSCSI side:
 *    `iscsi-perf` (libiscsi-bin) in `cp`, sequential (BENCH_ST_SEQ_KB per request, BENCH_ST_SEQ_QD in
 *    flight) and random (`-r`, BENCH_ST_RAND_KB, BENCH_ST_RAND_QD), BENCH_ST_SECONDS each, its "iops
 *    average". Direct side: a node read loop on the same file with the same request size and the
 *    same number of reads in flight (positional `fs.read`, UV_THREADPOOL_SIZE = queue depth), random
 *    offsets 512-byte aligned as iscsi-perf's LBAs; plus `dd bs=SEQ_KB` (one read in flight) as a C
 *    cross-check of the sequential loop. Page cache: tgtd's default backing store (rdwr) does
 *    buffered I/O, so both sides read the file from the page cache (it is read once before); no
 *    O_DIRECT and no drop_caches (a shared machine): this measures what tgt and iSCSI add, not the
 *    disk. libiscsi-bin has no write tool (iscsi-perf reads only): writes are not measured.
 *    BENCH_ST_RUNS rounds, alternating which side goes first; medians.
 *
 * 2. Create → login. A real nats-server (scripts/lib/nats-server.ts) with the controllers' volume
 *    API (`registryWritesHostedService`, in this process), the storage role in this process
 *    (buildStorageRole with the real `openVolumeFeed`, credentials of a storage node, backend tgt,
 *    the bed's tgtd), an instance record `web-1` on `compute-1`. Per run, on one clock:
 *      `node dist/mammatus.mjs volume create bst-N --size …M --node storage-1` (a process; its
 *      `--rpc-addr` points at a closed port, so the check of the named node fails at once and the
 *      volume is recorded anyway, as without a local serf agent) → the role's feed delivers the
 *      record → its pass (render, backing file, tgt-admin) → its report `serving` →
 *      `node dist/mammatus.mjs volume attach bst-N --instance web-1 --initiator IQN` → the feed →
 *      the pass re-creating the target with the ACL → `iscsi-inq` from `cp` with the volume's CHAP
 *      (every BENCH_ST_PROBE_MS) answers DIRECT_ACCESS.
 *    Attach starts once create is served (not at once as a user may): so each step's time is its
 *    own. The volume goes where `--node` puts it, /var/lib/mammatus/volumes/bst<hex>-N.img (sparse;
 *    removed at the end). tgt-admin/tgtadm calls are timed by wrapping the role's runner (as
 *    compute.ts times LXD's requests with a proxy). The split of the total:
 *      CLI            the two `volume` processes (node start-up, NATS connect, KV write)
 *      registry       CLI exit → the feed hands the records to the role (controllers' watch,
 *                     announce, 50 ms debounce, list), and the role's report round trip
 *      tgt            inside tgt-admin and tgtadm (the tools and tgtd's own work)
 *      other commands the role's other commands (ss, stat, mkdir, truncate, chmod)
 *      agent          the rest of the role's passes: its own code (render, diff, conf write, parsing)
 *      login          the pass's end → the probe's answer (probe interval + the login itself)
 *    The agent's share = agent / total (goal < 25 %; with its other commands reported beside).
 *    Baseline: the same target by hand, `tgtadm` calls straight from this process (truncate, chmod,
 *    target new, logicalunit new, account new, account bind, bind initiator-name), then the same probe.
 *
 * Goals: create → login < 2 s (median); the agent's share < 25 % (median); iSCSI / direct
 * reported (no goal: tgt is a userspace target, the ratio is what it is).
 *
 * Knobs: BENCH_ST_PHASES (throughput,create), BENCH_ST_SIZE_MB (256), BENCH_ST_SECONDS (5),
 * BENCH_ST_RUNS (3), BENCH_ST_SEQ_KB (128), BENCH_ST_SEQ_QD (8), BENCH_ST_RAND_KB (4),
 * BENCH_ST_RAND_QD (32), BENCH_ST_CREATE_RUNS (5), BENCH_ST_PROBE_MS (25). Every process,
 * namespace, target and file it creates is removed at the end, also on error and on Ctrl-C.
 * Prints a readable report with PASS/MISS, then one JSON line {"bench":"storage",…}.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import type { Run } from '../core/contracts.js';
import { buildRun } from '../core/exec.js';
import { buildFileOps } from '../core/files.js';
import type { VolumeRecord } from '../core/volume-record.js';
import { buildStorageRole, type VolumeFeed } from '../roles/storage/index.js';
import { applyTgt } from '../roles/storage/tgt-apply.js';
import { renderTgt } from '../roles/storage/tgt-render.js';
import { registryWritesHostedService } from '../src/registry/hosted.js';
import { InstanceRegistry } from '../src/registry/registry.js';
import { openVolumeFeed } from '../src/registry/volume-feed.js';
import { DEFAULT_VOLUME_DIR } from '../src/registry/volumes.js';
import { connectNats } from '../core/nats.js';
import { canUseNetns, missingTools } from '../scripts/lib/netns-bed.js';
import { natsServerAvailable, startNatsServer } from '../scripts/lib/nats-server.js';
import { freePort } from '../scripts/lib/ports.js';
import { buildTgtBed, TGT_BED_ADDRS, type TgtBed } from '../scripts/lib/tgt-bed.js';
import { sleep } from '../scripts/lib/wait.js';
import { BUNDLE, Cleanup, emitJson, ensureBundle, Goals, machine, median, printMachine, round, runMain, tempDir } from './lib.js';

const num = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const PHASES = (process.env.BENCH_ST_PHASES ?? 'throughput,create').split(',');
const SIZE_MB = num('BENCH_ST_SIZE_MB', 256);
const SECONDS = num('BENCH_ST_SECONDS', 5);
const RUNS = num('BENCH_ST_RUNS', 3);
const SEQ = { kb: num('BENCH_ST_SEQ_KB', 128), qd: num('BENCH_ST_SEQ_QD', 8), random: false };
const RAND = { kb: num('BENCH_ST_RAND_KB', 4), qd: num('BENCH_ST_RAND_QD', 32), random: true };
const CREATE_RUNS = num('BENCH_ST_CREATE_RUNS', 5);
const PROBE_MS = num('BENCH_ST_PROBE_MS', 25);

const TOOLS = ['tgtd', 'tgtadm', 'tgt-admin', 'iscsi-inq', 'iscsi-perf', 'truncate', 'ss', 'dd', 'timeout'];
const CP = 'iqn.2026-12.mammatus:compute-1';
const MiB = 1 << 20;
/** One clock for everything (epoch ms). */
const now = () => performance.timeOrigin + performance.now();

type Pattern = typeof SEQ;
interface Rate {
  iops: number;
  mbps: number;
}

/** What exec gives back, never throwing. */
function exec(file: string, args: readonly string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({
        code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0,
        stdout,
        stderr,
      }),
    );
  });
}

async function must(file: string, args: readonly string[]): Promise<string> {
  const r = await exec(file, args);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// 1. Throughput

/**
 * The direct side: `qd` positional reads of `kb` KiB in flight on `file` for `seconds`, through
 * libuv's thread pool (one thread per read in flight). Printed as JSON: reads done and seconds.
 */
const READ_LOOP = `
const fs = require('node:fs');
const [file, kb, qd, random, seconds] = process.argv.slice(1);
const bs = Number(kb) * 1024, fd = fs.openSync(file, 'r'), size = fs.fstatSync(fd).size;
const sectors = Math.floor((size - bs) / 512), t0 = process.hrtime.bigint(), end = Date.now() + Number(seconds) * 1000;
let pos = 0, ops = 0, active = 0;
const one = (buf) => {
  if (Date.now() >= end) { if (--active === 0) done(); return; }
  let off;
  if (random === '1') off = Math.floor(Math.random() * sectors) * 512;
  else { off = pos; pos = pos + 2 * bs > size ? 0 : pos + bs; }
  fs.read(fd, buf, 0, bs, off, (err, n) => { if (err || n !== bs) throw err ?? new Error('short read'); ops++; one(buf); });
};
const done = () => console.log(JSON.stringify({ ops, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
for (let i = 0; i < Number(qd); i++) { active++; one(Buffer.allocUnsafe(bs)); }
`;

async function direct(file: string, p: Pattern): Promise<Rate> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['-e', READ_LOOP, file, String(p.kb), String(p.qd), p.random ? '1' : '0', String(SECONDS)],
      { env: { ...process.env, UV_THREADPOOL_SIZE: String(Math.max(4, p.qd)) }, timeout: (SECONDS + 30) * 1000 },
      (err, stdout) => (err ? reject(new Error(`the read loop failed: ${err.message}`)) : resolve(stdout)),
    );
  });
  const r = JSON.parse(out) as { ops: number; seconds: number };
  const iops = r.ops / r.seconds;
  return { iops, mbps: (iops * p.kb * 1024) / 1e6 };
}

/** `dd bs=SEQ_KB` over the whole file, repeated for about BENCH_ST_SECONDS (at most 200 times). */
async function ddSequential(file: string): Promise<Rate> {
  let bytes = 0;
  const t0 = now();
  for (let i = 0; i < 200 && now() - t0 < SECONDS * 1000; i++) {
    await must('dd', [`if=${file}`, 'of=/dev/null', `bs=${SEQ.kb}K`, 'status=none']);
    bytes += SIZE_MB * MiB;
  }
  const s = (now() - t0) / 1000;
  return { iops: bytes / (SEQ.kb * 1024) / s, mbps: bytes / 1e6 / s };
}

async function viaIscsi(bed: TgtBed, url: string, p: Pattern): Promise<Rate> {
  const argv = ['timeout', '-s', 'INT', String(SECONDS), 'iscsi-perf', '-i', CP, '-b', String((p.kb * 1024) / 512), '-m', String(p.qd)];
  const r = await bed.exec('cp', [...argv, ...(p.random ? ['-r'] : []), url], (SECONDS + 30) * 1000);
  const all = [...r.stdout.matchAll(/iops average (\d+)/g)];
  if (!all.length) throw new Error(`iscsi-perf printed no average: ${r.stdout.slice(-500)} ${r.stderr.slice(-500)}`);
  const iops = Number(all.at(-1)![1]);
  return { iops, mbps: (iops * p.kb * 1024) / 1e6 };
}

interface ThroughputResult {
  sequential: { iscsi: Rate; direct: Rate; dd: Rate; ratio: number };
  random: { iscsi: Rate; direct: Rate; ratio: number };
}

async function throughput(bed: TgtBed): Promise<ThroughputResult> {
  const dir = path.join(bed.dir, 'volumes');
  const file = path.join(dir, 'perf.img');
  mkdirSync(dir, { recursive: true });
  console.log(`\n1. throughput: ${SIZE_MB} MiB file of random data, ${SECONDS} s per run, ${RUNS} rounds`);
  await must('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${SIZE_MB}`, 'status=none']);
  await must('chmod', ['600', file]);
  const perf: VolumeRecord = {
    name: 'perf',
    size_bytes: SIZE_MB * MiB,
    node: 'storage-1',
    backing: { kind: 'file', path: file },
    state: 'available',
    attached: { instance: 'web-1', node: 'compute-1', initiator: CP },
    chap: { user: 'perf-user', secret: 'perfSecret123456' },
    created_at: '2026-12-06T00:00:00Z',
    updated_at: '2026-12-06T00:00:00Z',
  };
  const conf = path.join(bed.dir, 'perf.conf');
  const apply = (v: VolumeRecord) =>
    applyTgt(renderTgt('storage-1', [v], { path: dir }), {
      run: buildRun(),
      files: buildFileOps(),
      confPath: conf,
      tgtConfig: conf,
      controlPort: bed.controlPort,
      portal: TGT_BED_ADDRS.portal,
    });
  const served = await apply(perf);
  if (served.errors.length) throw new Error(`perf target: ${JSON.stringify(served.errors)}`);
  const url = `iscsi://${perf.chap.user}%${perf.chap.secret}@${TGT_BED_ADDRS.portal}/iqn.2026-12.mammatus:volume.perf/1`;
  await must('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none']); // into the page cache
  const rows: Record<'seq' | 'rand', { iscsi: Rate[]; direct: Rate[] }> = {
    seq: { iscsi: [], direct: [] },
    rand: { iscsi: [], direct: [] },
  };
  const dd: Rate[] = [];
  const fmt = (r: Rate) => `${r.mbps.toFixed(1)} MB/s ${Math.round(r.iops)} IOPS`;
  for (let i = 0; i < RUNS; i++) {
    for (const [key, p] of [
      ['seq', SEQ],
      ['rand', RAND],
    ] as const) {
      const order = i % 2 === 0 ? (['iscsi', 'direct'] as const) : (['direct', 'iscsi'] as const);
      for (const side of order) {
        const r = side === 'iscsi' ? await viaIscsi(bed, url, p) : await direct(file, p);
        rows[key][side].push(r);
        console.log(`  round ${i + 1} ${key === 'seq' ? 'sequential' : 'random    '} ${side.padEnd(6)} ${fmt(r)}`);
      }
    }
    const d = await ddSequential(file);
    dd.push(d);
    console.log(`  round ${i + 1} sequential dd     ${fmt(d)} (one read in flight)`);
  }
  const med = (rs: Rate[]): Rate => ({ iops: median(rs.map((r) => r.iops)), mbps: median(rs.map((r) => r.mbps)) });
  const gone = await apply({ ...perf, state: 'deleting' });
  if (gone.errors.length) console.log(`  (removing the perf target: ${JSON.stringify(gone.errors)})`);
  const seq = { iscsi: med(rows.seq.iscsi), direct: med(rows.seq.direct), dd: med(dd) };
  const rnd = { iscsi: med(rows.rand.iscsi), direct: med(rows.rand.direct) };
  return {
    sequential: { ...seq, ratio: seq.iscsi.mbps / seq.direct.mbps },
    random: { ...rnd, ratio: rnd.iscsi.iops / rnd.direct.iops },
  };
}

// ---------------------------------------------------------------------------------------------
// 2. Create → login

interface Call {
  file: string;
  start: number;
  end: number;
}

/** Total length of the union of intervals clipped to [from, to]. */
function covered(intervals: readonly { start: number; end: number }[], from: number, to: number): number {
  const xs = intervals
    .map((i) => ({ s: Math.max(i.start, from), e: Math.min(i.end, to) }))
    .filter((i) => i.e > i.s)
    .sort((a, b) => a.s - b.s);
  let total = 0;
  let cur: { s: number; e: number } | undefined;
  for (const x of xs) {
    if (cur && x.s <= cur.e) cur.e = Math.max(cur.e, x.e);
    else {
      if (cur) total += cur.e - cur.s;
      cur = { ...x };
    }
  }
  return total + (cur ? cur.e - cur.s : 0);
}

/** Spawns the bundled CLI; resolves with its wall interval. */
function cli(args: readonly string[]): Promise<{ start: number; end: number; out: string }> {
  return new Promise((resolve, reject) => {
    const start = now();
    const child = spawn(process.execPath, [BUNDLE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const end = now();
      if (code === 0) resolve({ start, end, out });
      else reject(new Error(`mammatus ${args.join(' ')} exited ${code}: ${out}`));
    });
  });
}

/** Probes a CHAP login every PROBE_MS until it answers; the successful probe's interval. */
async function probeLogin(bed: TgtBed, url: string, deadlineMs = 30_000): Promise<{ start: number; end: number; tries: number }> {
  const t0 = now();
  for (let tries = 1; tries < 10_000 && now() - t0 < deadlineMs; tries++) {
    const start = now();
    const r = await bed.exec('cp', ['iscsi-inq', '-i', CP, url], 10_000);
    if (/DIRECT_ACCESS/.test(r.stdout)) return { start, end: now(), tries };
    await sleep(PROBE_MS);
  }
  throw new Error(`no login to ${url.replace(/%[^@]*@/, '%…@')} within ${deadlineMs} ms`);
}

interface Split {
  total: number;
  cli: number;
  registry: number;
  tgt: number;
  other_commands: number;
  agent: number;
  login: number;
  unaccounted: number;
}

interface HandRun {
  total: number;
  commands: number;
  login: number;
}

/** The next free tid, as tgt-admin picks it (untimed: an operator knows their tids). */
async function nextTid(bed: TgtBed): Promise<string> {
  const shown = await must('tgtadm', ['-C', String(bed.controlPort), '--lld', 'iscsi', '--mode', 'target', '--op', 'show']);
  return String(Math.max(0, ...[...shown.matchAll(/^Target (\d+):/gm)].map((x) => Number(x[1]))) + 1);
}

/**
 * Baseline 1: the same kind of target with tgtadm straight from this process, then the same
 * probe. Its IQN is not a volume's (`org.example`), so the storage role leaves it alone.
 */
async function byHandTgtadm(bed: TgtBed, i: number): Promise<HandRun> {
  const iqn = `iqn.2026-12.org.example:hand-${i}`;
  const file = path.join(bed.dir, `hand-${i}.img`);
  const tid = await nextTid(bed);
  const user = `hand${i}-user`;
  const secret = `handSecret${i}abcdef`.slice(0, 16);
  const C = ['-C', String(bed.controlPort), '--lld', 'iscsi'];
  const h0 = now();
  await must('truncate', ['-s', `${SIZE_MB}M`, file]);
  await must('chmod', ['600', file]);
  await must('tgtadm', [...C, '--mode', 'target', '--op', 'new', '--tid', tid, '--targetname', iqn]);
  await must('tgtadm', [...C, '--mode', 'logicalunit', '--op', 'new', '--tid', tid, '--lun', '1', '--backing-store', file]);
  await must('tgtadm', [...C, '--mode', 'account', '--op', 'new', '--user', user, '--password', secret]);
  await must('tgtadm', [...C, '--mode', 'account', '--op', 'bind', '--tid', tid, '--user', user]);
  await must('tgtadm', [...C, '--mode', 'target', '--op', 'bind', '--tid', tid, '--initiator-name', CP]);
  const h1 = now();
  const login = await probeLogin(bed, `iscsi://${user}%${secret}@${TGT_BED_ADDRS.portal}/${iqn}/1`);
  return { total: login.end - h0, commands: h1 - h0, login: login.end - h1 };
}

/** Baseline 2: a conf block like the role's (own file, own IQN) and one `tgt-admin --update`, then the probe. */
async function byHandTgtAdmin(bed: TgtBed, i: number): Promise<HandRun> {
  const iqn = `iqn.2026-12.org.example:admin-${i}`;
  const file = path.join(bed.dir, `admin-${i}.img`);
  const conf = path.join(bed.dir, `admin-${i}.conf`);
  const user = `admin${i}-user`;
  const secret = `adminSecret${i}abcd`.slice(0, 16);
  const block = [
    `<target ${iqn}>`,
    `    <backing-store ${file}>`,
    '        lun 1',
    '    </backing-store>',
    `    incominguser ${user} ${secret}`,
    '    initiator-address 255.255.255.255',
    `    initiator-name ${CP}`,
    '</target>',
    '',
  ].join('\n');
  const h0 = now();
  await must('truncate', ['-s', `${SIZE_MB}M`, file]);
  await must('chmod', ['600', file]);
  writeFileSync(conf, block, { mode: 0o600 });
  await must('tgt-admin', ['-C', String(bed.controlPort), '-c', conf, '--update', iqn]);
  const h1 = now();
  const login = await probeLogin(bed, `iscsi://${user}%${secret}@${TGT_BED_ADDRS.portal}/${iqn}/1`);
  return { total: login.end - h0, commands: h1 - h0, login: login.end - h1 };
}

/** Wall time of `node dist/mammatus.mjs version`: the CLI's start-up alone (median of 3). */
async function cliStartup(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await cli(['version']);
    times.push(r.end - r.start);
  }
  return median(times);
}

async function createToLogin(bed: TgtBed, work: string, cleanup: Cleanup) {
  console.log(`\n2. volume create → login: ${CREATE_RUNS} runs each way, ${SIZE_MB} MiB volumes, probe every ${PROBE_MS} ms`);
  const nats = await startNatsServer({ name: 'bst', dir: path.join(work, 'nats') });
  cleanup.add(() => nats.stop());
  const log = pino({ level: 'silent' });
  const service = registryWritesHostedService(() => 1);
  await service.start({ node: 'ctl', natsUrl: nats.url, members: [], credentials: nats.credentials, log });
  cleanup.add(() => service.stop());
  const admin = await connectNats(nats.url, { name: 'bench', credentials: nats.credentials });
  cleanup.add(() => admin.close());
  await (await InstanceRegistry.open(admin)).register({ name: 'web-1', macs: ['02:00:00:00:18:01'], node: 'compute-1' });
  const storageCreds = await nats.admit('storage-1', ['storage']);

  const calls: Call[] = [];
  const real = buildRun();
  const run: Run = async (file, args, o) => {
    const start = now();
    try {
      return await real(file, args, o);
    } finally {
      calls.push({ file, start, end: now() });
    }
  };
  const changes: { at: number; volumes: readonly VolumeRecord[] }[] = [];
  const reports: { name: string; state: string; start: number; end: number }[] = [];
  const feed: VolumeFeed = async (servers, node, onChange, l) => {
    const link = await openVolumeFeed(
      servers,
      node,
      (v) => {
        changes.push({ at: now(), volumes: v });
        onChange(v);
      },
      l,
      storageCreds,
    );
    return {
      close: () => link.close(),
      async report(name, o) {
        const start = now();
        await link.report(name, o);
        reports.push({ name, state: o.state, start, end: now() });
      },
    };
  };
  const conf = path.join(bed.dir, 'conf.d', 'mammatus.conf');
  const role = buildStorageRole({ volumeFeed: feed, tgt: { confPath: conf, tgtConfig: conf, controlPort: bed.controlPort } });
  await role.start!({
    run,
    files: buildFileOps(),
    log,
    desired: {
      node: 'storage-1',
      config: { backend: 'tgt', path: DEFAULT_VOLUME_DIR, registry: { nats: [nats.url] } },
      members: [{ name: 'storage-1', addr: TGT_BED_ADDRS.st, port: 7946, tags: {}, status: 'alive' }],
    },
  });
  cleanup.add(() => role.stop?.());
  for (let i = 0; i < 100 && !changes.length; i++) await sleep(50);
  if (!changes.length) throw new Error('the storage role never got its volume list');

  // The CLI: no serf agent (a closed port: the named node's check fails at once), admin credentials.
  const g = ['--rpc-addr', `127.0.0.1:${await freePort()}`, '--credentials', nats.credentialsFile];
  const id = `bst${randomBytes(2).toString('hex')}`;
  const dirExisted = existsSync(DEFAULT_VOLUME_DIR);
  cleanup.add(() => {
    for (let i = 1; i <= CREATE_RUNS; i++) rmSync(path.join(DEFAULT_VOLUME_DIR, `${id}-${i}.img`), { force: true });
    if (!dirExisted && existsSync(DEFAULT_VOLUME_DIR) && readdirSync(DEFAULT_VOLUME_DIR).length === 0) rmdirSync(DEFAULT_VOLUME_DIR);
  });
  const iqnOf = (name: string) => `iqn.2026-12.mammatus:volume.${name}`;
  const ours: Split[] = [];
  const byHand: HandRun[] = [];
  const byHandAdmin: HandRun[] = [];
  const s = (x: number) => `${Math.round(x)} ms`;

  for (let i = 1; i <= CREATE_RUNS; i++) {
    const name = `${id}-${i}`;
    const seenFrom = changes.length;
    const t0 = now();
    const create = await cli([...g, 'volume', 'create', name, '--size', `${SIZE_MB}M`, '--node', 'storage-1', '--nats', nats.url]);
    const find = (pred: (v: VolumeRecord) => boolean) =>
      changes.slice(seenFrom).find((c) => c.volumes.some((v) => v.name === name && pred(v)));
    let served: (typeof reports)[number] | undefined;
    for (let w = 0; w < 600 && !served; w++) {
      served = reports.find((r) => r.name === name && r.state === 'serving');
      if (!served) await sleep(10);
    }
    if (!served) throw new Error(`${name} was not served within 6 s: ${JSON.stringify(reports.filter((r) => r.name === name))}`);
    const changeA = find(() => true)!;
    const attach = await cli([...g, 'volume', 'attach', name, '--instance', 'web-1', '--initiator', CP, '--nats', nats.url]);
    const chap = changeA.volumes.find((v) => v.name === name)!.chap;
    const url = `iscsi://${chap.user}%${chap.secret}@${TGT_BED_ADDRS.portal}/${iqnOf(name)}/1`;
    const login = await probeLogin(bed, url);
    const changeB = find((v) => v.attached !== undefined);
    if (!changeB) throw new Error(`${name}: the attach never reached the role`);
    const t1 = login.end;
    // Pass A: records delivered → its report; pass B: the attach delivered → its last command before the login.
    const passA = { start: changeA.at, end: served.start };
    const lastB = Math.max(...calls.filter((c) => c.start >= changeB.at && c.start < login.end).map((c) => c.end));
    const passB = { start: changeB.at, end: Math.min(lastB, login.end) };
    const inPasses = (pred: (c: Call) => boolean) =>
      covered(calls.filter(pred), passA.start, passA.end) + covered(calls.filter(pred), passB.start, passB.end);
    const tgt = inPasses((c) => c.file === 'tgt-admin' || c.file === 'tgtadm');
    const other = inPasses((c) => c.file !== 'tgt-admin' && c.file !== 'tgtadm');
    const passes = passA.end - passA.start + (passB.end - passB.start);
    const split: Split = {
      total: t1 - t0,
      cli: create.end - create.start + (attach.end - attach.start),
      registry: changeA.at - create.end + (served.end - served.start) + (changeB.at - attach.end),
      tgt,
      other_commands: other,
      agent: passes - tgt - other,
      login: t1 - passB.end,
      unaccounted: 0,
    };
    split.unaccounted = split.total - split.cli - split.registry - split.tgt - split.other_commands - split.agent - split.login;
    ours.push(split);
    console.log(
      `  run ${i} mammatus ${s(split.total)}: CLI ${s(split.cli)}, registry ${s(split.registry)}, tgt ${s(tgt)}, ` +
        `other commands ${s(other)}, agent ${s(split.agent)}, login ${s(split.login)} (${login.tries} probes), rest ${s(split.unaccounted)}`,
    );

    const a = await byHandTgtadm(bed, i);
    byHand.push(a);
    console.log(`  run ${i} by hand, tgtadm    ${s(a.total)}: truncate + chmod + 5 × tgtadm ${s(a.commands)}, login ${s(a.login)}`);
    const b = await byHandTgtAdmin(bed, i);
    byHandAdmin.push(b);
    console.log(
      `  run ${i} by hand, tgt-admin ${s(b.total)}: truncate + chmod + conf + tgt-admin --update ${s(b.commands)}, login ${s(b.login)}`,
    );
  }
  await role.stop?.();
  const tgtCalls = calls.filter((c) => c.file === 'tgt-admin' || c.file === 'tgtadm');
  const callMs = (file: string) => calls.filter((c) => c.file === file).map((c) => c.end - c.start);
  return {
    ours,
    byHand,
    byHandAdmin,
    calls: {
      tgt_admin: { n: callMs('tgt-admin').length, median_ms: round(median(callMs('tgt-admin')), 1) },
      tgtadm: { n: callMs('tgtadm').length, median_ms: round(median(callMs('tgtadm')), 1) },
      other: Object.fromEntries(
        [...new Set(calls.map((c) => c.file))]
          .filter((f) => f !== 'tgt-admin' && f !== 'tgtadm')
          .map((f) => [f, { n: callMs(f).length, median_ms: round(median(callMs(f)), 1) }]),
      ),
      tgt_total: tgtCalls.length,
    },
  };
}

/** Every number of a row rounded to 0.1 (for the JSON line). */
function rounded(row: Split | HandRun): Record<string, number> {
  return Object.fromEntries(Object.entries(row).map(([k, v]: [string, number]) => [k, round(v, 1)]));
}

/** Prints the create → login results, checks the goals, and returns them for the JSON line. */
function reportCreate(c: Awaited<ReturnType<typeof createToLogin>>, startupMs: number, goals: Goals): Record<string, unknown> {
  const med = (k: keyof Split) => median(c.ours.map((x) => x[k]));
  const total = med('total');
  const shares = c.ours.map((x) => (x.agent / x.total) * 100);
  const withCommands = c.ours.map((x) => ((x.agent + x.other_commands) / x.total) * 100);
  // Everything that is neither tgt's work nor the login: what mammatus (CLI, registry, role) adds.
  const notTgt = c.ours.map((x) => ((x.cli + x.registry + x.other_commands + x.agent) / x.total) * 100);
  const hand = (runs: HandRun[]) => ({
    median_ms: round(median(runs.map((x) => x.total)), 1),
    commands_median_ms: round(median(runs.map((x) => x.commands)), 1),
    runs: runs.map(rounded),
  });
  const [tgtadm, tgtAdmin] = [hand(c.byHand), hand(c.byHandAdmin)];
  const keys: (keyof Split)[] = ['cli', 'registry', 'tgt', 'other_commands', 'agent', 'login', 'unaccounted'];
  const ms = (x: number) => `${Math.round(x)} ms`;
  console.log(`\n  mammatus create → login, medians: total ${ms(total)}; ${keys.map((k) => `${k} ${ms(med(k))}`).join(', ')}`);
  console.log(`  (the CLI's start-up alone, \`mammatus version\`: ${ms(startupMs)} per process, 2 processes)`);
  console.log(
    `  by hand → login: tgtadm ${ms(tgtadm.median_ms)} (commands ${ms(tgtadm.commands_median_ms)}), tgt-admin ${ms(tgtAdmin.median_ms)} (commands ${ms(tgtAdmin.commands_median_ms)})`,
  );
  const calls = c.calls;
  console.log(
    `  the role ran tgt-admin ${calls.tgt_admin.n}× (median ${calls.tgt_admin.median_ms.toFixed(1)} ms), tgtadm ${calls.tgtadm.n}× (median ${calls.tgtadm.median_ms.toFixed(1)} ms); other: ` +
      Object.entries(calls.other)
        .map(([f, x]) => `${f} ${x.n}× ${x.median_ms} ms`)
        .join(', '),
  );
  console.log(
    `  the agent's share: ${median(shares).toFixed(1)} % (with its other commands ${median(withCommands).toFixed(1)} %); ` +
      `mammatus / by hand: ${(total / tgtadm.median_ms).toFixed(1)} (tgtadm), ${(total / tgtAdmin.median_ms).toFixed(1)} (tgt-admin)`,
  );
  console.log(`  neither tgt nor the login (CLI + registry + the role's commands and code): ${median(notTgt).toFixed(1)} %`);
  goals.check('volume create → target answering a CHAP login (median)', total < 2000, round(total, 0), '< 2000 ms');
  goals.check("the storage agent's share of it (median)", median(shares) < 25, round(median(shares), 1), '< 25 %');
  return {
    runs: c.ours.map(rounded),
    median_ms: Object.fromEntries((['total', ...keys] as (keyof Split)[]).map((k) => [k, round(med(k), 1)])),
    cli_startup_ms: round(startupMs, 1),
    agent_share_percent: round(median(shares), 2),
    agent_with_commands_share_percent: round(median(withCommands), 2),
    not_tgt_share_percent: round(median(notTgt), 2),
    by_hand_tgtadm: tgtadm,
    by_hand_tgt_admin: tgtAdmin,
    ratio_mammatus_by_hand_tgtadm: round(total / tgtadm.median_ms),
    ratio_mammatus_by_hand_tgt_admin: round(total / tgtAdmin.median_ms),
    calls,
  };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const skip = canUseNetns() ?? missingTools(TOOLS) ?? (natsServerAvailable() ? undefined : 'nats-server is missing');
  if (skip) {
    console.log(`storage benchmark skipped: ${skip} (apt-get install tgt libiscsi-bin nats-server, run as root)`);
    return 0;
  }
  if (PHASES.includes('create')) ensureBundle();
  const m = machine();
  printMachine(m);
  const cleanup = new Cleanup();
  const goals = new Goals();
  try {
    const work = tempDir('storage', cleanup);
    const bed = await buildTgtBed();
    cleanup.add(() => bed.destroy());
    await bed.startTgtd();
    console.log(`bed ${bed.id}: tgtd on control port ${bed.controlPort}, portal ${TGT_BED_ADDRS.portal}`);
    const out: Record<string, unknown> = {
      bench: 'storage',
      machine: m,
      knobs: { SIZE_MB, SECONDS, RUNS, SEQ, RAND, CREATE_RUNS, PROBE_MS },
    };

    if (PHASES.includes('throughput')) {
      const t = await throughput(bed);
      const f = (r: Rate) => `${r.mbps.toFixed(1)} MB/s, ${Math.round(r.iops)} IOPS`;
      console.log(
        `\n  sequential ${SEQ.kb} KiB × ${SEQ.qd}: iSCSI ${f(t.sequential.iscsi)}; direct ${f(t.sequential.direct)}; dd ${f(t.sequential.dd)}`,
      );
      console.log(`  random ${RAND.kb} KiB × ${RAND.qd}:      iSCSI ${f(t.random.iscsi)}; direct ${f(t.random.direct)}`);
      console.log(
        `  iSCSI / direct: sequential ${t.sequential.ratio.toFixed(2)}, random ${t.random.ratio.toFixed(2)} (medians of ${RUNS})`,
      );
      out.throughput = {
        sequential: { ...t.sequential, ratio: round(t.sequential.ratio) },
        random: { ...t.random, ratio: round(t.random.ratio) },
      };
    }

    if (PHASES.includes('create')) {
      out.create = reportCreate(await createToLogin(bed, work, cleanup), await cliStartup(), goals);
    }
    out.goals = goals.results;
    emitJson(out);
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('storage', main);
