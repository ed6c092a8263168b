/**
 * The effects a gateway agent needs when it runs in-process but its role must act inside a test
 * bed's gateway namespace: every command and daemon is prefixed with `ip netns exec`, and the DNS
 * probe asks dnsmasq from inside that namespace.
 */
import { readFileSync } from 'node:fs';
import { buildRun, buildSpawn } from '../../core/exec.js';
import { FALLBACK_SERVICE_USER, findPasswdUser } from '../../core/users.js';
import type { DnsProbe } from '../../roles/gateway/index.js';
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
