/**
 * The load balancer part of the local cluster's demo (scripts/lib/local-demo.ts): the web server its
 * containers run, the balancer `web` in front of them on the gateway, and the lines that show it
 * from this host, which is the gateway's WAN side (scripts/lib/local-lan.ts). docs/loadbalancer.md
 * has the rest.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { WAN } from './local-lan.js';

/** The tag the demo's web servers carry, and the balancer selects. */
export const WEB_TAG = 'app=web';
/** The name the balancer answers for: no DNS has it, so curl is told where it is (`--resolve`). */
export const WEB_HOST = 'web.example.org';

/**
 * The demo's user-data: a page naming the instance (its hostname, which cloud-init sets from the
 * metadata's `local-hostname`) served on 8080 by python3, which every cloud-init image has. A
 * transient systemd unit, so it outlives cloud-init's final stage.
 */
export const WEB_USER_DATA = `#cloud-config
# The local cluster's web server (scripts/lib/local-lb-demo.ts): a page naming this instance, on port 8080.
runcmd:
  - [sh, -c, 'mkdir -p /srv/www && echo "hello from $(hostname)" > /srv/www/index.html']
  - [systemd-run, --unit=web, python3, -m, http.server, --directory, /srv/www, "8080"]
`;

/**
 * Where the user-data is, as the commands to try name it: beside the run's operator key (the
 * run's directory, `.cluster/`), relative to where the commands are pasted (the repository).
 */
export function webUserDataFile(operatorKey: string): string {
  const file = path.join(path.dirname(operatorKey), 'web-user-data.yaml');
  return path.relative(process.cwd(), file) || file;
}

/** Writes {@link WEB_USER_DATA} to {@link webUserDataFile}; returns that path. */
export function writeWebUserData(operatorKey: string): string {
  const file = webUserDataFile(operatorKey);
  writeFileSync(file, WEB_USER_DATA);
  return file;
}

/** `lb create web …` (without the global flags): port 80 by Host, every `app=web` instance's 8080, an HTTP check. */
export function lbCreateArgs(): string[] {
  return [...'lb create web --listen 80 --mode http --host'.split(' '), WEB_HOST, '--target', `tag:${WEB_TAG}:8080`, '--health', '/'];
}

/** curl's arguments for the balancer's page, from this host, at the gateway's WAN address. */
export function webCurlArgs(): string[] {
  return ['-s', '-m', '5', '--resolve', `${WEB_HOST}:80:${WAN.gateway}`, `http://${WEB_HOST}/`];
}

/**
 * The commands to try once web-2 (tagged too) is launched: wait until the balancer sends it
 * requests, see both answer, and the balancer's record. `mammatus` is the CLI with its global
 * flags; `nats` the `--nats URL` flag.
 */
export function balancerLines(mammatus: string, nats: string): string[] {
  const curl = `curl ${webCurlArgs().join(' ')}`;
  return [
    `timeout 120 sh -c 'until ${curl} | grep -q web-2; do sleep 1; done'   # web-2's web server is up: the balancer sends it requests`,
    `for i in 1 2 3 4; do ${curl}; done   # round robin: web-1 and web-2 in turn`,
    `${mammatus} lb list ${nats}`,
    `${mammatus} lb show web ${nats}   # its targets are selectors: every instance tagged ${WEB_TAG}`,
  ];
}
