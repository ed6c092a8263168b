/**
 * The effects a gateway agent needs when it runs in-process but its role must act inside a test
 * bed's gateway namespace: every command and daemon is prefixed with `ip netns exec`, and the DNS
 * probe asks dnsmasq from inside that namespace.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildRun, buildSpawn } from '../../core/exec.js';
import { FALLBACK_SERVICE_USER, findPasswdUser } from '../../core/users.js';
import { loadConfig } from '../../agent/config/load.js';
import { createAgent, type Agent } from '../../agent/daemon.js';
import { buildFileOps } from '../../core/files.js';
import type { Logger } from '../../core/contracts.js';
import { buildGatewayRole, type DnsProbe, type GatewayDeps } from '../../roles/gateway/index.js';
import type { Run, Spawn } from '../../core/contracts.js';
import type { GatewayBed } from './netns-bed.js';

/** Runner, spawner and DNS probe bound to the bed's gateway namespace. */
export async function gatewayEffects(bed: GatewayBed, probeTries = 50): Promise<{ run: Run; spawn: Spawn; probe: DnsProbe }> {
  const run = buildRun();
  const spawn = await buildSpawn();
  const inNs = (file: string, args: readonly string[]) => ['netns', 'exec', bed.ns.gw, file, ...args];
  return {
    run: (file, args, o) => run('ip', inNs(file, args), o),
    spawn: (file, args, o) => {
      if (o?.user === undefined || process.geteuid?.() !== 0) return spawn('ip', inNs(file, args), o);
      // `ip netns exec` needs root: the user is switched after it, by setpriv, as the funnel would.
      const { user, ...rest } = o;
      const passwd = readFileSync('/etc/passwd', 'utf8');
      const ids = findPasswdUser(passwd, user) ?? findPasswdUser(passwd, FALLBACK_SERVICE_USER);
      if (!ids) throw new Error(`neither ${user} nor ${FALLBACK_SERVICE_USER} exists`);
      const drop = [`--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--clear-groups', '--inh-caps=-all', '--', file, ...args];
      return spawn('ip', inNs('setpriv', drop), rest);
    },
    probe: async (server, name) => {
      for (let i = 0; i < probeTries; i++) {
        if ((await bed.dig(name, 'A', server, 'gw')).status === 'NOERROR') return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`DNS probe: ${name} not answered by ${server}`);
    },
  };
}

/**
 * The agent.yaml of a gateway agent in the bed, every file under `dir`. `extra` lines go into
 * `roles.gateway` (indented by the caller), `extraPaths` into its `paths`.
 */
export function bedGatewayYaml(
  bed: GatewayBed,
  dir: string,
  serfRpcAddr: string,
  extra: readonly string[],
  extraPaths: Record<string, string> = {},
): string {
  const p = (name: string) => path.join(dir, name);
  const paths = {
    dnsmasq_conf: p('dnsmasq.conf'),
    hosts_dir: p('hosts.d'),
    leases: p('leases/dnsmasq.leases'),
    iptables: p('iptables.rules'),
    sysctl: p('sysctl.conf'),
    lease_hook: p('lease-hook'),
    dhcp_hosts_dir: p('dhcp-hosts.d'),
    members: p('members'),
    left_out: p('left-out'),
    ...extraPaths,
  };
  const pathList = Object.entries(paths).map(([k, v]) => `${k}: ${v}`);
  return (
    [
      `state_dir: ${p('state')}`,
      `serf: { rpc_addr: "${serfRpcAddr}" }`,
      'watch_config: false',
      'roles:',
      '  gateway:',
      `    lan: { interface: ${bed.ifaces.gwLan}, address: 10.88.0.1/24 }`,
      `    wan: { interface: ${bed.ifaces.gwWan} }`,
      '    upstream_dns: [203.0.113.1]',
      ...extra,
      `    paths: { ${pathList.join(', ')} }`,
    ].join('\n') + '\n'
  );
}

/**
 * A gateway agent in this process acting in the bed's gateway namespace (`gatewayEffects`), with
 * the config file at `configPath`; started, not yet waited for.
 */
export async function startBedGatewayAgent(
  bed: GatewayBed,
  configPath: string,
  log: Logger,
  deps: Omit<GatewayDeps, 'spawn' | 'probe'>,
): Promise<Agent> {
  const { run, spawn, probe } = await gatewayEffects(bed);
  const opts = { path: configPath, env: {} };
  const agent = createAgent({
    loaded: await loadConfig(opts),
    reloadConfig: () => loadConfig(opts),
    log,
    run,
    files: buildFileOps(),
    roles: { gateway: buildGatewayRole({ spawn, probe, ...deps }) },
    version: '0.0.0-test',
  });
  await agent.start();
  return agent;
}
