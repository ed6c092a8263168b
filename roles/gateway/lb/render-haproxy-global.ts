/**
 * HAProxy's global and defaults sections (pure), and the small include that drops the workers'
 * privileges (`haproxy-user.cfg`, a second `-f`). The include is apart from `haproxy.cfg` because
 * what it says is the host's state, not the balancers': the uid and gid of the `haproxy` user
 * (Debian's package creates it), which the supervisor reads from /etc/passwd when it prepares
 * HAProxy's directories and passes in. The master stays root: it binds the ports, reads the
 * certificates and owns the admin and master sockets (mode 600, root's, so only the agent speaks
 * to them); only the workers, which talk to clients and servers, run as the user.
 */
import path from 'node:path';
import type { SystemUser } from '../../../core/users.js';
import type { HaproxySettings } from './render-haproxy.js';

/** The system user HAProxy's workers run as when it exists. */
export const HAPROXY_USER = 'haproxy';

/** The include's path, beside `haproxy.cfg`. */
export const userConfigPath = (s: Pick<HaproxySettings, 'configDir'>): string => path.join(s.configDir, 'haproxy-user.cfg');

/**
 * The include: `uid`/`gid` of `user` (numeric, from passwd: `user` alone would leave the gid 0),
 * or, without one, a global section that drops nothing (the workers then run as root, and the
 * agent logs why).
 */
export function renderHaproxyUser(user: SystemUser | undefined): string {
  const header = '# managed by mammatus role=gateway\n';
  if (!user) return `${header}# no ${HAPROXY_USER} user on this host: the workers run as the master's user\nglobal\n`;
  return `${header}# the workers run as ${user.name}\nglobal\n  uid ${user.uid}\n  gid ${user.gid}\n`;
}

/** `global` and `defaults` of `haproxy.cfg`. */
export function renderGlobal(s: HaproxySettings): string {
  const t = s.timeouts;
  return [
    'global',
    `  maxconn ${s.maxconn}`,
    // expose-fd listeners: a reloaded worker takes the listening sockets over from the old one,
    // so no connection is refused while both swap.
    `  stats socket ${s.adminSocket} mode 600 level admin expose-fd listeners`,
    '  stats timeout 30s',
    '  log stderr format raw local0 notice',
    // An old worker still serving long connections (WebSockets, database sessions) after a
    // reload ends within this time: every lb create or rm and certificate renewal reloads, so
    // long enough for most sessions to end on their own, short enough that old workers do not pile up.
    '  hard-stop-after 5m',
    '',
    'defaults',
    '  log global',
    '  option dontlognull',
    `  timeout connect ${t.connect}ms`,
    `  timeout client ${t.client}ms`,
    `  timeout server ${t.server}ms`,
    `  timeout http-request ${t.httpRequest}ms`,
    `  timeout check ${t.check}ms`,
    // Once a connection is a tunnel (TCP mode, an upgraded WebSocket) it may idle this long; the
    // client and server timeouts above would cut an idle session after 30 s.
    '  timeout tunnel 1h',
    // A connection refused by a server just removed or killed is retried on another one.
    '  retries 3',
    '  option redispatch 1',
  ].join('\n');
}
