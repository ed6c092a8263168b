/**
 * Network boot (issue 19): the agent's and the gateway's share of a boot, each part against a
 * baseline in the same run.
 *
 *   npx tsx bench/boot.ts          # ~2 min; needs busybox, curl, nats-server and the bundle
 *
 * 1. Boot files. The gateway's boot server exactly as the gateway runs it (the bundle's `mammatus
 *    service run boot-http` child, bench/boot-serve.ts) serves vmlinuz, initrd.img and
 *    filesystem.squashfs of the image of `scripts/build-boot-image.sh` (its cached directory; when
 *    the script fails, generated files of the same sizes, said in the report) to N machines at
 *    once (BENCH_BOOT_NS, default 1,4,16): N curl processes on loopback, each reading the three
 *    files in order to /dev/null. Baseline: `busybox httpd -f` serving the same directory. Both
 *    read from the page cache (one untimed round each first). BENCH_BOOT_RUNS rounds per N,
 *    alternating which goes first; medians. Reported: MB/s (all machines' bytes / the round's
 *    wall time), per-machine time (median), ours / baseline, and the server's CPU per boot
 *    (utime + stime of its process, busybox's reaped per-connection children included).
 *    Goal: throughput ≥ 0.8 × busybox at each N.
 * 2. Per-host requests (bench/boot-hosts.ts): the stub `/boot.ipxe` from the boot server, then
 *    through the gateway's metadata proxy to the metadata service: the per-MAC iPXE script, the
 *    NoCloud meta-data, user-data, vendor-data and network-config, a token and the join (answered by
 *    the controllers' real admission over NATS). BENCH_BOOT_HOSTS boots, one planned host each.
 *    Baseline: as many GETs, on fresh connections, of static files of the same sizes from busybox
 *    httpd, interleaved with ours. Reported: per step and the sum per boot, medians.
 * 3. The share: per boot, (1)'s per-machine time at N=1 and at the largest N plus (2)'s sum,
 *    divided by the whole boot measured in docs/benchmarks.md section 14.
 *
 * Knobs: BENCH_BOOT_NS (1,4,16), BENCH_BOOT_RUNS (3), BENCH_BOOT_HOSTS (20), BENCH_BOOT_IMAGE (a
 * directory holding the three files: skips the build script), BENCH_BOOT_BIOS_S / BENCH_BOOT_UEFI_S
 * (the whole boot, 345 / 359), BENCH_BOOT_BUNDLE (another bundle's boot server, e.g. one built from
 * a patched copy, for an A/B). Prints a readable report with PASS/MISS, then one JSON line
 * {"bench":"boot",…}. Every process it starts is stopped by its PID, also on error and on Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseGatewayConfig } from '../roles/gateway/config.js';
import { renderBootStub } from '../roles/gateway/render-boot.js';
import { natsServerAvailable } from '../scripts/lib/nats-server.js';
import { bootRound, BOOT_FILES, startBootServer, startBusybox, type FileServer, type Round } from './boot-serve.js';
import { request, startHostsBed, STEPS, type Answer } from './boot-hosts.js';
import {
  BUNDLE,
  Cleanup,
  clkTck,
  emitJson,
  ensureBundle,
  Goals,
  machine,
  median,
  printMachine,
  ROOT,
  round,
  runMain,
  tempDir,
} from './lib.js';

/**
 * The whole boot, qemu start → `host list: ok`, of run 3 in docs/benchmarks.md section 14 (TCG,
 * one vCPU, two machines booting at once): BIOS 344.7 s, UEFI 359.0 s.
 */
const BOOT_BIOS_S = Number(process.env.BENCH_BOOT_BIOS_S ?? 345);
const BOOT_UEFI_S = Number(process.env.BENCH_BOOT_UEFI_S ?? 359);
const NS = (process.env.BENCH_BOOT_NS ?? '1,4,16').split(',').map(Number);
const RUNS = Number(process.env.BENCH_BOOT_RUNS ?? 3);
const HOSTS = Number(process.env.BENCH_BOOT_HOSTS ?? 20);
const SERVER_BUNDLE = process.env.BENCH_BOOT_BUNDLE ? path.resolve(process.env.BENCH_BOOT_BUNDLE) : BUNDLE;
const RATIO_GOAL = 0.8;
/** A round may take this long per machine before curl gives up (a 2-core machine under load). */
const ROUND_DEADLINE_MS = 120_000;

/** The boot image's directory, and whether it is the real one. */
function bootImage(tmp: string): { dir: string; real: boolean; note: string } {
  const has = (d: string) => BOOT_FILES.every((f) => existsSync(path.join(d, f)));
  if (process.env.BENCH_BOOT_IMAGE && has(process.env.BENCH_BOOT_IMAGE))
    return { dir: process.env.BENCH_BOOT_IMAGE, real: true, note: 'BENCH_BOOT_IMAGE' };
  const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'build-boot-image.sh')], { encoding: 'utf8', timeout: 900_000 });
  const dir = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status === 0 && has(dir)) return { dir, real: true, note: 'scripts/build-boot-image.sh' };
  // Sparse files of the sizes of the image in section 14: reads of holes cost what reads of data do from the page cache.
  const sizes = [11_737_024, 18_423_522, 204_165_120];
  BOOT_FILES.forEach((f, i) => {
    const fd = openSync(path.join(tmp, f), 'w');
    ftruncateSync(fd, sizes[i]);
    closeSync(fd);
  });
  return {
    dir: tmp,
    real: false,
    note: `GENERATED files of the real sizes (build-boot-image.sh: exit ${r.status}: ${r.stderr.trim().split('\n').pop()})`,
  };
}

const mb = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

async function main(): Promise<number> {
  const missing = ['busybox', 'curl'].filter((t) => spawnSync('which', [t]).status !== 0);
  if (missing.length || !natsServerAvailable()) {
    console.log(`boot benchmark skipped: missing ${[...missing, ...(natsServerAvailable() ? [] : ['nats-server'])].join(', ')}`);
    return 1;
  }
  ensureBundle();
  const m = machine();
  printMachine(m);
  const cleanup = new Cleanup();
  const goals = new Goals();
  const hz = clkTck();
  let result: Record<string, unknown>;
  try {
    const tmp = tempDir('boot', cleanup);
    const genDir = path.join(tmp, 'image');
    spawnSync('mkdir', ['-p', genDir]);
    const image = bootImage(genDir);
    const fileBytes = BOOT_FILES.map((f) => statSync(path.join(image.dir, f)).size);
    const bootBytes = fileBytes.reduce((a, b) => a + b, 0);
    console.log(`\nboot image: ${image.dir} (${image.real ? 'the real image' : 'NOT the real image'}, from ${image.note})`);
    console.log(
      `  ${BOOT_FILES.map((f, i) => `${f} ${(fileBytes[i] / 2 ** 20).toFixed(1)} MiB`).join(', ')}; ${(bootBytes / 1e6).toFixed(1)} MB per boot`,
    );
    const stub = path.join(tmp, 'boot.ipxe');
    writeFileSync(stub, renderBootStub(parseGatewayConfig({})));

    // ---- 1. boot files to N machines at once ----
    const ours = await startBootServer(image.dir, stub, cleanup, SERVER_BUNDLE);
    const base = await startBusybox(image.dir, cleanup);
    console.log(
      `\n1. boot files: ${ours.label} (pid ${ours.pid}, ${path.relative(ROOT, SERVER_BUNDLE)}) vs ${base.label} (pid ${base.pid}); warming the page cache`,
    );
    await bootRound(base, 1, bootBytes, ROUND_DEADLINE_MS);
    await bootRound(ours, 1, bootBytes, ROUND_DEADLINE_MS);
    const serve: Record<number, Record<'ours' | 'base', Round[]>> = {};
    for (const n of NS) {
      serve[n] = { ours: [], base: [] };
      for (let r = 0; r < RUNS; r++) {
        const order: [FileServer, 'ours' | 'base'][] =
          r % 2
            ? [
                [base, 'base'],
                [ours, 'ours'],
              ]
            : [
                [ours, 'ours'],
                [base, 'base'],
              ];
        for (const [srv, key] of order) serve[n][key].push(await bootRound(srv, n, bootBytes, ROUND_DEADLINE_MS));
      }
    }
    const serveRows = NS.map((n) => {
      const side = (rs: Round[]) => ({
        mbps: median(rs.map((x) => mb(x.bytes, x.wallMs))),
        perMachineMs: median(rs.map((x) => median(x.perMachineMs))),
        cpuMsPerBoot: median(rs.map((x) => ((x.serverTicks / hz) * 1000) / n)),
        wallMs: rs.map((x) => round(x.wallMs, 0)),
      });
      const o = side(serve[n].ours);
      const b = side(serve[n].base);
      return { n, ours: o, base: b, ratio: o.mbps / b.mbps };
    });
    console.log(
      `  N machines | ours MB/s | busybox MB/s | ours/busybox | per machine ours / busybox (s) | server CPU per boot ours / busybox (ms)`,
    );
    for (const r of serveRows)
      console.log(
        `  ${String(r.n).padStart(10)} | ${r.ours.mbps.toFixed(0).padStart(9)} | ${r.base.mbps.toFixed(0).padStart(12)} | ${r.ratio.toFixed(2).padStart(12)} | ${(r.ours.perMachineMs / 1000).toFixed(2)} / ${(r.base.perMachineMs / 1000).toFixed(2)} | ${r.ours.cpuMsPerBoot.toFixed(0)} / ${r.base.cpuMsPerBoot.toFixed(0)}`,
      );
    for (const r of serveRows)
      goals.check(
        `boot files to ${r.n} machine${r.n === 1 ? '' : 's'} at once: MB/s ours / busybox`,
        r.ratio >= RATIO_GOAL,
        r.ratio,
        `≥ ${RATIO_GOAL}`,
      );

    // ---- 2. the per-host requests ----
    console.log(`\n2. per-host requests: ${HOSTS} boots, each a planned host of its own (real admission over NATS), vs busybox`);
    const bed = await startHostsBed(tmp, ours.base, HOSTS + 1, cleanup);
    const warm = await bed.boot(0);
    const staticDir = path.join(tmp, 'static');
    spawnSync('mkdir', ['-p', staticDir]);
    warm.forEach((a, i) => writeFileSync(path.join(staticDir, `step${i}`), Buffer.alloc(a.body.length, 'x')));
    const bbStatic = await startBusybox(staticDir, cleanup);
    const oursSteps: number[][] = STEPS.map(() => []);
    const baseSteps: number[][] = STEPS.map(() => []);
    const baseBoot = async () => {
      const out: Answer[] = [];
      for (let i = 0; i < STEPS.length; i++) out.push(await request(`${bbStatic.base}/step${i}`));
      if (out.some((a) => a.status !== 200)) throw new Error('busybox did not answer a static step');
      return out;
    };
    await baseBoot();
    for (let i = 1; i <= HOSTS; i++) {
      const pair = i % 2 ? [() => bed.boot(i), baseBoot] : [baseBoot, () => bed.boot(i)];
      for (const run of pair) {
        const out = await run();
        (run === baseBoot ? baseSteps : oursSteps).forEach((s, k) => s.push(out[k].ms));
      }
    }
    const stepRows = STEPS.map((name, k) => ({ name, bytes: warm[k].body.length, ours: median(oursSteps[k]), base: median(baseSteps[k]) }));
    const sumOf = (s: number[][]) => median(s[0].map((_, j) => s.reduce((a, col) => a + col[j], 0)));
    const reqOurs = sumOf(oursSteps);
    const reqBase = sumOf(baseSteps);
    console.log(`  step                               | bytes | ours ms | busybox ms (same-sized static file)`);
    for (const r of stepRows)
      console.log(`  ${r.name.padEnd(34)} | ${String(r.bytes).padStart(5)} | ${r.ours.toFixed(2).padStart(7)} | ${r.base.toFixed(2)}`);
    console.log(
      `  sum per boot (median of ${HOSTS})       |       | ${reqOurs.toFixed(2).padStart(7)} | ${reqBase.toFixed(2)}   (ours / busybox ${(reqOurs / reqBase).toFixed(1)}×)`,
    );

    // ---- 3. the share ----
    console.log(
      `\n3. the agent's and gateway's share of a boot (whole boot from docs/benchmarks.md section 14: BIOS ${BOOT_BIOS_S} s, UEFI ${BOOT_UEFI_S} s, TCG)`,
    );
    const nMax = Math.max(...NS);
    const shares = [...new Set([Math.min(...NS), nMax])].map((n) => {
      const row = serveRows.find((r) => r.n === n)!;
      const oursMs = row.ours.perMachineMs + reqOurs;
      const baseMs = row.base.perMachineMs + reqBase;
      const pct = (ms: number, s: number) => (ms / (s * 1000)) * 100;
      return {
        n,
        oursMs,
        baseMs,
        biosPct: pct(oursMs, BOOT_BIOS_S),
        uefiPct: pct(oursMs, BOOT_UEFI_S),
        overBaselineBiosPct: pct(oursMs - baseMs, BOOT_BIOS_S),
        cpuMsPerBoot: row.ours.cpuMsPerBoot,
      };
    });
    for (const s of shares)
      console.log(
        `  N=${s.n}: files ${((s.oursMs - reqOurs) / 1000).toFixed(2)} s + requests ${(reqOurs / 1000).toFixed(3)} s = ${(s.oursMs / 1000).toFixed(2)} s per boot → ` +
          `${s.biosPct.toFixed(2)} % of a BIOS boot, ${s.uefiPct.toFixed(2)} % of a UEFI boot (busybox in our place: ${(s.baseMs / 1000).toFixed(2)} s; ours beyond it: ${s.overBaselineBiosPct.toFixed(2)} % of a BIOS boot); boot server CPU ${s.cpuMsPerBoot.toFixed(0)} ms per boot`,
      );

    const r1 = (x: number) => round(x, 1);
    result = {
      bench: 'boot',
      machine: m,
      image: { dir: image.dir, real: image.real, bytes: fileBytes },
      bootServerBundle: path.relative(ROOT, SERVER_BUNDLE),
      serve: serveRows.map((r) => ({
        n: r.n,
        ratio: round(r.ratio, 3),
        ours: {
          mbps: r1(r.ours.mbps),
          perMachineMs: r1(r.ours.perMachineMs),
          cpuMsPerBoot: r1(r.ours.cpuMsPerBoot),
          wallMs: r.ours.wallMs,
        },
        busybox: {
          mbps: r1(r.base.mbps),
          perMachineMs: r1(r.base.perMachineMs),
          cpuMsPerBoot: r1(r.base.cpuMsPerBoot),
          wallMs: r.base.wallMs,
        },
      })),
      requests: {
        boots: HOSTS,
        steps: stepRows.map((r) => ({ ...r, ours: round(r.ours), base: round(r.base) })),
        sumMs: round(reqOurs),
        baseSumMs: round(reqBase),
      },
      share: {
        bootS: { bios: BOOT_BIOS_S, uefi: BOOT_UEFI_S },
        perN: shares.map((s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, round(v)]))),
      },
      goals: goals.results,
    };
  } finally {
    console.log('\nstopping the boot server, busybox, the metadata bed and nats-server');
    await cleanup.run();
  }
  emitJson(result);
  return 0;
}

runMain('boot', main);
