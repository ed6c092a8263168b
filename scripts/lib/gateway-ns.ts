/**
 * The effects a gateway agent needs when it runs in-process but its role must act inside a test
 * bed's gateway namespace: every command and daemon is prefixed with `ip netns exec`, and the DNS
 * probe asks dnsmasq from inside that namespace.
 */
import { buildRun, buildSpawn } from '../../core/exec.js';
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
    spawn: (file, args, o) => spawn('ip', inNs(file, args), o),
    probe: async (server, name) => {
      for (let i = 0; i < probeTries; i++) {
        if ((await bed.dig(name, 'A', server, 'gw')).status === 'NOERROR') return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`DNS probe: ${name} not answered by ${server}`);
    },
  };
}
