/**
 * What the local cluster shows and suggests once it is up (scripts/local-cluster.ts): the demo — as
 * root with LXD and an instance image, a container launched on compute-1 that takes its address
 * from the gateway's DHCP, resolves at the gateway's DNS, reads its metadata through the gateway's
 * proxy and serves a web page, which this host (the gateway's WAN side) gets through the gateway's
 * load balancer by name (scripts/lib/local-lb-demo.ts) — and the commands to try next. Each demo step is printed as a shell line and
 * run with the same argv, so what the reader sees is what ran; the test of the README's first
 * command (test/integration/local-cluster-newcomer.test.ts) runs every suggested line as printed.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { LAN, NETNS, hostOnWan } from './local-lan.js';
import { balancerLines, lbCreateArgs, webCurlArgs, webUserDataFile, writeWebUserData, WEB_TAG } from './local-lb-demo.js';
import { CONTROLLER_PORTS } from './local-root.js';
import { findOnPath } from '../../core/exec.js';
import { runCommand } from './lxd-node.js';
import { BUNDLE } from './mammatus-agent.js';

/** The cluster as the demo and the suggestions need it. */
export interface DemoCluster {
  /** Serf RPC of the node the CLI talks to (compute-1's) and of another one on the host (storage-1's or the controller's). */
  readonly rpc: string;
  readonly otherRpc: string;
  readonly asRoot: boolean;
  /** The run's operator key (private): it signs events and `mammatus.leases` asks. */
  readonly operatorKey: string;
  /** The compute node's LXD, when it runs, and the image alias imported into it. */
  readonly lxd?: { readonly lxdDir: string; readonly alias?: string };
  /** Storage-1 serves volumes: its portal (`IP:3260`) and the `nsenter …` prefix of its namespaces. */
  readonly storage?: { readonly portal: string; readonly prefix: string };
}

/**
 * The initiator name `volume attach` admits in the commands to try: compute-1 publishes none
 * (without open-iscsi it has no `/etc/iscsi/initiatorname.iscsi`), and the reader logs in with it.
 */
export const TRY_INITIATOR = 'iqn.2026-12.local.mammatus:compute-1';

/** The CLI as the reader types it from the repository: `node dist/mammatus.mjs`. */
function cliWord(): string {
  return `node ${path.relative(process.cwd(), BUNDLE) || BUNDLE}`;
}

/** The controller's address: as root it serves on the LAN (the gateway's namespace cannot reach our loopback). */
function controllerIp(c: DemoCluster): string {
  return c.asRoot ? LAN.host : '127.0.0.1';
}

/** Prints `mammatus status` as the reader would get it. */
export function printStatus(c: DemoCluster): void {
  console.log(`\n$ ${cliWord()} --rpc-addr ${c.rpc} status`);
  try {
    console.log(execFileSync(process.execPath, [BUNDLE, '--rpc-addr', c.rpc, 'status'], { encoding: 'utf8' }));
  } catch (err) {
    console.log((err as { stdout?: string }).stdout ?? String(err));
  }
}

/** One printed and run step: its shell line, and whether it did what the demo needs. */
async function step(
  line: string,
  file: string,
  args: string[],
  env: Record<string, string>,
  ok: (out: string) => boolean,
  tries = 1,
): Promise<string | undefined> {
  console.log(`$ ${line}`);
  for (let i = 0; i < tries; i++) {
    const r = await runCommand(file, args, env, 300_000);
    const out = r.stdout.trim();
    if (r.code === 0 && ok(out)) {
      console.log(out);
      return out;
    }
    if (i === tries - 1) console.log(`(failed: exit ${r.code}) ${(r.stderr || out).trim().split('\n').slice(-3).join(' | ')}`);
    else await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return undefined;
}

/**
 * The demo: launches `web-1` on compute-1 (a web server on 8080, tagged `app=web`) and waits until
 * it runs, asks the gateway's DNS for its name, reads its instance id from 169.254.169.254 inside
 * it, then, when this host is on the gateway's WAN, creates the balancer `web` and gets web-1's
 * page through it. True when every step worked.
 */
export async function runDemo(c: DemoCluster): Promise<boolean> {
  if (!c.lxd?.alias) return false;
  const nats = `nats://${controllerIp(c)}:${CONTROLLER_PORTS.nats}`;
  const lxdEnv = { LXD_DIR: c.lxd.lxdDir };
  const wan = hostOnWan();
  console.log(
    `\nThe demo: a container on compute-1, with its address from the gateway's DHCP, its name in the gateway's DNS and its metadata through the gateway${wan ? ", serving a web page this host gets through the gateway's load balancer" : ''}:`,
  );
  const userData = writeWebUserData(c.operatorKey);
  const launchArgs = [
    '--rpc-addr',
    c.rpc,
    'instance',
    'launch',
    'web-1',
    '--image',
    c.lxd.alias,
    '--node',
    'compute-1',
    '--user-data',
    userData,
    '--tag',
    WEB_TAG,
    '--nats',
    nats,
    '--wait',
  ];
  const launched = await step(`${cliWord()} ${launchArgs.join(' ')}`, process.execPath, [BUNDLE, ...launchArgs], {}, (out) =>
    / runs on compute-1 at /.test(out),
  );
  const ip = /at (\d+\.\d+\.\d+\.\d+)/.exec(launched ?? '')?.[1];
  if (!ip) return false;
  const digArgs = [`@${LAN.gateway}`, 'web-1.mammatus', '+short'];
  const named = await step(`dig ${digArgs.join(' ')}`, 'dig', digArgs, {}, (out) => out === ip, 10);
  const curlArgs = ['exec', 'web-1', '--', 'curl', '-s', '-m', '5', 'http://169.254.169.254/latest/meta-data/instance-id'];
  const id = await step(
    `LXD_DIR=${c.lxd.lxdDir} lxc ${curlArgs.join(' ')}`,
    'lxc',
    curlArgs,
    lxdEnv,
    (out) => /^i-[0-9a-f]{17}$/.test(out),
    15,
  );
  if (!named || !id) return false;
  if (!wan) return true;
  const lbArgs = ['--rpc-addr', c.rpc, ...lbCreateArgs(), '--nats', nats];
  if (!(await step(`${cliWord()} ${lbArgs.join(' ')}`, process.execPath, [BUNDLE, ...lbArgs], {}, (out) => out.startsWith('created web:'))))
    return false;
  // web-1's cloud-init starts its web server after boot, then the balancer's health check (2 s)
  // sees it: tens of seconds, bounded by the tries.
  const page = await step(`curl ${webCurlArgs().join(' ')}`, 'curl', webCurlArgs(), {}, (out) => out === 'hello from web-1', 60);
  return Boolean(page);
}

/** The commands to try next, each a line to paste into a shell as it is. */
export function suggestions(c: DemoCluster, demoRan: boolean): string[] {
  const cli = cliWord();
  const a = c.rpc;
  const ctl = controllerIp(c);
  const nats = `--nats nats://${ctl}:${CONTROLLER_PORTS.nats}`;
  const lines = [
    `serf members -rpc-addr=${a}`,
    `serf query -rpc-addr=${a} mammatus.ping`,
    `serf query -rpc-addr=${a} -tag role=compute mammatus.status`,
    `serf event -rpc-addr=${c.otherRpc} mammatus.reconcile compute`,
    `serf tags -rpc-addr=${a} -set role=compute,storage      # the compute node takes on storage too`,
    `${cli} --rpc-addr ${a} status --json`,
    `${cli} --rpc-addr ${c.otherRpc} query mammatus.ping --tag role=storage`,
    `${cli} --rpc-addr ${a} event mammatus.hello --identity ${path.relative(process.cwd(), c.operatorKey) || c.operatorKey}   # signed: every agent checks the operator key (then ignores it)`,
  ];
  if (demoRan && c.lxd) {
    const lxc = `LXD_DIR=${c.lxd.lxdDir} lxc`;
    lines.push(
      `${cli} --rpc-addr ${a} instance list ${nats}          # web-1, with its address and live status`,
      `${lxc} exec web-1 -- cloud-init status --wait --long   # done, NoCloud from 169.254.169.254 via the gateway`,
      `${lxc} exec web-1 -- curl -s http://169.254.169.254/latest/meta-data/local-hostname`,
      `${cli} --rpc-addr ${a} instance launch web-2 --image ${c.lxd.alias} --user-data ${webUserDataFile(c.operatorKey)} --tag ${WEB_TAG} --wait ${nats}   # the least loaded compute node`,
      `dig @${LAN.gateway} web-2.mammatus +short`,
      ...(hostOnWan() ? balancerLines(`${cli} --rpc-addr ${a}`, nats) : []),
      `${cli} --rpc-addr ${a} instance delete web-2 ${nats}   # its DHCP lease and name go with it${hostOnWan() ? ', and balancer web drops it' : ''}`,
    );
  } else if (c.asRoot) {
    lines.push(
      `${cli} --rpc-addr ${a} instance register web-1 --mac 02:00:00:00:00:21 --ip 10.213.0.21 --node compute-1 ${nats}`,
      `dig @${LAN.gateway} web-1.mammatus +short                  # the gateway reserves its address and name`,
    );
  } else {
    lines.push(
      `${cli} --rpc-addr ${a} instance register web-1 --mac 02:00:00:00:00:21 --ip ${ctl} ${nats}`,
      `curl http://${ctl}:${CONTROLLER_PORTS.metadata}/latest/meta-data/local-hostname   # the controller's metadata service`,
    );
  }
  if (c.storage) lines.push(...volumeLines(cli, a, nats, c.storage));
  // The controller's monitoring store (examples/cluster/controller.yaml), where Prometheus is installed.
  if (findOnPath('prometheus')) {
    const prom = `http://127.0.0.1:${CONTROLLER_PORTS.prometheus}`;
    lines.push(
      `${cli} top --once --prometheus ${prom}   # every node, its roles and their state, from the controller's Prometheus`,
      `curl -s ${prom}/api/v1/query --data-urlencode 'query=sum by (node) (mammatus_role_state{state="ok"})'   # roles ok per node`,
    );
  }
  if (c.asRoot) {
    lines.push(
      `dig @${LAN.gateway} compute-1.mammatus +short                # the gateway's DNS knows every member`,
      `${cli} --rpc-addr ${a} query mammatus.leases --tag role=gateway --identity ${path.relative(process.cwd(), c.operatorKey) || c.operatorKey}   # addresses: signed asks only`,
    );
  }
  return lines;
}

/**
 * A volume on storage-1, attached to web-1, seen on the wire: its target in storage-1's tgtd, a
 * discovery and a login with the volume's CHAP (from `volume show`) as the attached initiator, from
 * this host; then detached and removed. compute-1 itself logs in to nothing here (README).
 */
function volumeLines(cli: string, a: string, nats: string, s: NonNullable<DemoCluster['storage']>): string[] {
  const vol = `${cli} --rpc-addr ${a} volume`;
  // CHAP user and secret into libiscsi's environment (never on a command line, where ps shows them),
  // with the target (the IQN: year-month of creation) and the LUN, in a subshell that then ends.
  const chap = `'@sh "export LIBISCSI_CHAP_USERNAME=\\(.chap.user) LIBISCSI_CHAP_PASSWORD=\\(.chap.secret) TARGET=iqn.\\(.created_at[0:7]).mammatus:volume.\\(.name)/\\(.lun)"'`;
  return [
    `${vol} create data --size 1G --wait ${nats}   # storage-1 serves it (its own tgtd, netns ${NETNS.st})`,
    `${s.prefix} tgtadm --lld iscsi --mode target --op show   # storage-1's tgtd: the target, LUN 1, its CHAP user, an ACL of nobody`,
    `${vol} attach data --instance web-1 --initiator ${TRY_INITIATOR} ${nats}   # recorded; compute-1 logs in to nothing here`,
    `${vol} list ${nats}   # attached; storage-1 now admits that initiator (with the CHAP)`,
    `timeout 10 sh -c 'until iscsi-ls -i ${TRY_INITIATOR} iscsi://${s.portal}; do sleep 1; done'   # what discovery shows that initiator, once storage-1 applied the attach`,
    `(eval "$(${vol} show data --json --show-secret ${nats} | jq -r ${chap})" && iscsi-inq -i ${TRY_INITIATOR} "iscsi://${s.portal}/$TARGET")   # a login with the volume's CHAP`,
    `${vol} detach data ${nats} && ${vol} rm data --wait ${nats}   # target and backing file go, then the record`,
  ];
}
