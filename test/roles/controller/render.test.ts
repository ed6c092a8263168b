/**
 * The controller renderers against golden files, and the rules of the routes as assertions.
 * Each `__fixtures__/controller/<case>.yaml` is a DesiredState; every rendered file is compared with
 * `__golden__/controller/<case>/<absolute path>`. Regenerate with
 * `npx vitest run test/roles/controller -u` and review the golden diff like code.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Member } from '../../../core/contracts.js';
import { CONTROLLER_DEFAULTS, parseControllerConfig } from '../../../roles/controller/config.js';
import { caConfigPaths } from '../../../roles/controller/ca-render.js';
import { SettingsError } from '../../../core/validation.js';
import {
  buildNatsConfig,
  controllerRoutes,
  localUrl,
  parseNatsConf,
  renderController,
  renderNatsConf,
  restartKey,
} from '../../../roles/controller/render.js';
import type { DesiredState } from '../../../roles/types.js';
import { admittedNode, annotateTrust } from '../../../core/trust.js';
import { parseRoleTag } from '../../../core/members.js';
import { fixedCredentials } from '../../helpers/trust.js';
import { duplicateNkeys, natsUser, natsUsers } from '../../../roles/controller/permissions.js';

const fixturesDir = join(import.meta.dirname, '..', '__fixtures__', 'controller');
const goldenRoot = join(import.meta.dirname, '..', '__golden__', 'controller');
const cases = readdirSync(fixturesDir)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length))
  .sort();

function loadFixture(name: string): DesiredState {
  const raw = parse(readFileSync(join(fixturesDir, `${name}.yaml`), 'utf8')) as {
    node: string;
    config?: Record<string, unknown>;
    members?: (Member & { untrusted?: boolean })[];
  };
  // Every member is admitted with the roles its tag names (the fixed test authority), unless the
  // fixture says `untrusted`; the roster holds them all, and two nodes that are not members.
  const admitted = [...ROSTER];
  const tagged = (raw.members ?? []).map(({ untrusted, ...m }, i) => {
    if (untrusted) return m;
    const creds = fixedCredentials(m.name, parseRoleTag(m.tags.role).roles, i % 4);
    admitted.push(admittedNode(creds));
    return { ...m, tags: { ...m.tags, trust: creds.tag } };
  });
  // The agent hands roles members sorted by name, trust checked; do the same.
  const members = annotateTrust(tagged, fixedCredentials(raw.node, ['controller']).authority).sort((a, b) => (a.name < b.name ? -1 : 1));
  const credentials = fixedCredentials(raw.node, ['controller'], tagged.findIndex((m) => m.name === raw.node) % 4);
  return { node: raw.node, config: raw.config ?? {}, members, credentials, admitted };
}

/** The roster every fixture renders with: the users and their permissions are part of the golden files. */
const ROSTER = [admittedNode(fixedCredentials('gw1', ['gateway'], 1)), admittedNode(fixedCredentials('cn1', ['compute'], 2))];
const trustOf = (node: string) => ({ credentials: fixedCredentials(node, ['controller']) });

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => `/${relative(dir, join(e.parentPath, e.name))}`);
}

const member = (name: string, addr: string, role: string, status: Member['status'] = 'alive'): Member => ({
  name,
  addr,
  port: 7946,
  tags: role ? { role } : {},
  status,
});

/** The parsed nats-server config a desired state renders to. */
function confOf(desired: DesiredState) {
  const file = renderController(desired).find((f) => f.path === CONTROLLER_DEFAULTS.paths.nats_conf)!;
  return parseNatsConf(file.content)!;
}

describe('controller role goldens', () => {
  it('has the three fixture cases', () => {
    expect(cases).toEqual(['custom', 'single', 'three']);
  });

  it.each(cases)('%s renders the golden files', async (name) => {
    for (const file of renderController(loadFixture(name))) {
      await expect(file.content).toMatchFileSnapshot(join(goldenRoot, name, file.path));
    }
  });

  it.each(cases)('%s has no stale golden files', async (name) => {
    const rendered = new Set(renderController(loadFixture(name)).map((f) => f.path));
    const stale = (await listFiles(join(goldenRoot, name))).filter((p) => !rendered.has(p));
    expect(stale).toEqual([]);
  });

  it.each(cases)('%s is deterministic, sorted by path, headed, and independent of member order', (name) => {
    const desired = loadFixture(name);
    const files = renderController(desired);
    expect(renderController(desired)).toEqual(files);
    expect(renderController({ ...desired, members: [...desired.members].reverse() })).toEqual(files);
    expect(files.map((f) => f.path)).toEqual([...files.map((f) => f.path)].sort());
    // The CA backends' JSON has no comments: caddy and step-ca read strict JSON (ca-render.ts).
    const ca = Object.values(caConfigPaths(parseControllerConfig(desired.config).ca));
    for (const f of files.filter((f) => !ca.includes(f.path)))
      expect(f.content.startsWith('# managed by mammatus role=controller\n')).toBe(true);
  });
});

describe('the rendered nats-server config', () => {
  it('runs one controller standalone: no cluster block, JetStream in the default store, 2 MiB payloads', () => {
    const { authorization, ...conf } = confOf(loadFixture('single'));
    expect(conf).toEqual({
      server_name: 'ctl-1',
      listen: '0.0.0.0:4222',
      http: '127.0.0.1:8222',
      max_payload: 2 * 1024 * 1024,
      logtime: false,
      jetstream: { store_dir: '/var/lib/mammatus/nats' },
    });
    expect(authorization.users).toHaveLength(3);
  });

  it('clusters three controllers: routes to the two others, sorted, at the cluster port', () => {
    const conf = confOf(loadFixture('three'));
    const secret = conf.cluster!.authorization.password;
    expect(conf.cluster).toEqual({
      name: 'mammatus',
      listen: '0.0.0.0:6222',
      authorization: { user: 'mammatus-route', password: secret },
      routes: [`nats-route://mammatus-route:${secret}@10.88.0.10:6222`, `nats-route://mammatus-route:${secret}@10.88.0.12:6222`],
    });
  });

  it('ignores members without the controller role, and this node itself', () => {
    const members = [
      member('me', '10.0.0.1', 'controller'),
      member('g', '10.0.0.2', 'gateway'),
      member('x', '10.0.0.3', ''),
      member('y', '10.0.0.4', 'controllers,compute'),
    ];
    expect(controllerRoutes('me', members, 6222)).toEqual([]);
    expect(confOf({ node: 'me', config: {}, members, credentials: fixedCredentials('me', ['controller']) }).cluster).toBeUndefined();
  });

  it('keeps failed, leaving and left controllers as routes; a reaped one (absent) is gone', () => {
    const members = [
      member('me', '10.0.0.1', 'controller'),
      member('f', '10.0.0.2', 'controller', 'failed'),
      member('l', '10.0.0.3', 'controller', 'left'),
      member('g', '10.0.0.4', 'compute,controller', 'leaving'),
    ];
    expect(controllerRoutes('me', members, 6222)).toEqual([
      'nats-route://10.0.0.2:6222',
      'nats-route://10.0.0.3:6222',
      'nats-route://10.0.0.4:6222',
    ]);
    expect(controllerRoutes('me', members.slice(0, 2), 6222)).toEqual(['nats-route://10.0.0.2:6222']);
  });

  it('brackets IPv6 addresses, skips addresses that are not IPs and merges duplicates', () => {
    const members = [
      member('a', 'fd00::2', 'controller'),
      member('b', 'not-an-ip', 'controller'),
      member('c', '10.0.0.9', 'controller'),
      member('d', '10.0.0.9', 'controller'),
    ];
    expect(controllerRoutes('me', members, 6333)).toEqual(['nats-route://10.0.0.9:6333', 'nats-route://[fd00::2]:6333']);
  });

  it('refuses a node name nats-server cannot take as server_name', () => {
    expect(() => buildNatsConfig('has space', CONTROLLER_DEFAULTS, [], trustOf('has space'))).toThrow(
      /cannot be (a NATS server name|admitted)/,
    );
  });

  it('reports an invalid setting as a SettingsError naming the key', () => {
    const bad = () =>
      renderController({
        node: 'n',
        config: { nats: { listen: 'nope' } },
        members: [],
        credentials: fixedCredentials('n', ['controller']),
      });
    expect(bad).toThrow(SettingsError);
    expect(bad).toThrow(/^roles\.controller\.nats\.listen: /);
  });
});

describe('trust: who may connect, and who is a controller', () => {
  it('renders nothing for a node that holds no controller credentials: a role tag alone starts no server', () => {
    expect(() => buildNatsConfig('a', CONTROLLER_DEFAULTS, [])).toThrow(
      /no controller credentials.*mammatus node admit a --role controller/,
    );
    const gateway = { credentials: fixedCredentials('a', ['gateway']) };
    expect(() => buildNatsConfig('a', CONTROLLER_DEFAULTS, [], gateway)).toThrow(/admit a as gateway/);
    // Credentials made for another node do not make this one a controller.
    expect(() => buildNatsConfig('a', CONTROLLER_DEFAULTS, [], trustOf('b'))).toThrow(/admit b as controller/);
  });

  it('lists this node and the roster as nkey users, controllers unrestricted, the others least privilege', () => {
    const conf = buildNatsConfig('a', CONTROLLER_DEFAULTS, [], { ...trustOf('a'), admitted: ROSTER });
    const users = conf.authorization.users;
    expect(users).toHaveLength(3);
    const self = users.find((u) => u.nkey === admittedNode(fixedCredentials('a', ['controller'])).nkey)!;
    expect(self.permissions).toBeUndefined();
    const gw = users.find((u) => u.nkey === ROSTER[0].nkey)!;
    const cn = users.find((u) => u.nkey === ROSTER[1].nkey)!;
    // Nobody but a controller may write a bucket: no `$KV.` subject is allowed to them, but a
    // gateway's own target health reports (one token after its name).
    for (const u of [gw, cn])
      expect(u.permissions!.publish.allow.filter((s) => s.startsWith('$KV.'))).toEqual(u === gw ? ['$KV.mammatus-lb-health.gw1.*'] : []);
    // Each answers the controllers' metrics requests on its own subject only, and replies only to the asker.
    expect(gw.permissions!.subscribe.allow).toEqual([`_INBOX.${gw.nkey.slice(1, 17)}.>`, 'mammatus.metrics.gw1']);
    expect(gw.permissions!.allow_responses).toBe(true);
    // A compute node hears about changes to the volumes attached to it, on its own subject only.
    expect(cn.permissions!.subscribe.allow).toEqual([
      `_INBOX.${cn.nkey.slice(1, 17)}.>`,
      'mammatus.metrics.cn1',
      'mammatus.volumes.changed.cn1',
    ]);
    expect(cn.permissions!.publish.allow).toContain('mammatus.registry.node.cn1');
    expect(cn.permissions!.publish.allow).toContain('mammatus.volumes.node.cn1');
    expect(gw.permissions!.publish.allow).not.toContain('mammatus.registry.node.gw1');
    expect(gw.permissions!.publish.allow.some((s) => s.startsWith('mammatus.volumes.'))).toBe(false);
  });

  it("leaves out (and names) a later roster entry that copies an earlier node's nkey; this controller's own entry always wins", () => {
    const self = admittedNode(fixedCredentials('a', ['controller']));
    const cn = { ...admittedNode(fixedCredentials('cn1', ['compute'], 2)), admitted_at: '2026-12-01T00:00:00.000Z' };
    // A later admission with cn1's key (public in its trust tag), under a name sorting first.
    const thief = { node: 'aaa', roles: ['controller' as const], nkey: cn.nkey, admitted_at: '2026-12-02T00:00:00.000Z' };
    const users = natsUsers(self, [thief, cn]);
    expect(users).toHaveLength(2);
    expect(users.find((u) => u.nkey === cn.nkey)!.permissions!.publish.allow).toContain('mammatus.registry.node.cn1');
    expect(duplicateNkeys(self, [thief, cn])).toEqual([{ node: 'aaa', kept: 'cn1', nkey: cn.nkey }]);
    // A roster entry copying this controller's key never displaces it.
    const copy = { node: 'zz', roles: ['gateway' as const], nkey: self.nkey, admitted_at: '2026-11-01T00:00:00.000Z' };
    expect(natsUsers(self, [copy]).find((u) => u.nkey === self.nkey)!.permissions).toBeUndefined();
    expect(duplicateNkeys(self, [copy])).toEqual([{ node: 'zz', kept: 'a', nkey: self.nkey }]);
    expect(duplicateNkeys(self, ROSTER)).toEqual([]);
  });

  it('gives a storage node the volume API on its own subjects and no bucket, no instance registry', () => {
    const st = natsUser(admittedNode(fixedCredentials('st1', ['storage'], 3)));
    expect(st.permissions).toEqual({
      publish: {
        allow: [
          '$JS.API.STREAM.INFO.KV_mammatus-ca',
          '$JS.API.STREAM.MSG.GET.KV_mammatus-ca',
          '$JS.API.DIRECT.GET.KV_mammatus-ca.>',
          'mammatus.ca.sign.st1',
          'mammatus.volumes.node.st1',
        ],
      },
      subscribe: { allow: [`_INBOX.${st.nkey.slice(1, 17)}.>`, 'mammatus.metrics.st1', 'mammatus.volumes.changed.st1'] },
      allow_responses: true,
    });
  });

  it('routes only to members whose trust tag proves controller, with the route secret', () => {
    const real = fixedCredentials('b', ['controller'], 1);
    const members = [
      { ...member('b', '10.0.0.2', 'controller'), trusted: ['controller'] },
      // Tagged controller, admitted as compute only: no route.
      { ...member('c', '10.0.0.3', 'controller'), trusted: ['compute'] },
      // Tagged controller with no proof at all: no route.
      { ...member('evil', '10.0.0.66', 'controller'), trusted: [] },
    ];
    const conf = buildNatsConfig('a', CONTROLLER_DEFAULTS, members, trustOf('a'));
    expect(conf.cluster!.routes).toHaveLength(1);
    expect(conf.cluster!.routes[0]).toMatch(/^nats-route:\/\/mammatus-route:[A-Za-z0-9_-]{43}@10\.0\.0\.2:6222$/);
    // The same secret on every controller of the authority: it derives from the authority's seed.
    expect(conf.cluster!.authorization.password).toBe(
      buildNatsConfig('b', CONTROLLER_DEFAULTS, [member('a', '10.0.0.1', 'controller')], { credentials: real }).cluster!.authorization
        .password,
    );
  });

  it('writes the config readable by root only (it holds the route secret)', () => {
    const file = renderController(loadFixture('single')).find((f) => f.path === CONTROLLER_DEFAULTS.paths.nats_conf)!;
    expect(file.mode).toBe(0o600);
  });
});

describe('reading the config back', () => {
  const three = buildNatsConfig(
    'a',
    CONTROLLER_DEFAULTS,
    [member('a', '10.0.0.1', 'controller'), member('b', '10.0.0.2', 'controller')],
    trustOf('a'),
  );

  it('parses what it rendered, and nothing else', () => {
    expect(parseNatsConf(renderNatsConf(three))).toEqual(three);
    expect(parseNatsConf('port: 4222\n')).toBeUndefined();
    expect(parseNatsConf('# managed\n[1]\n')).toBeUndefined();
  });

  it('asks for a restart only when more than the routes changed', () => {
    const more = buildNatsConfig(
      'a',
      CONTROLLER_DEFAULTS,
      [member('b', '10.0.0.2', 'controller'), member('c', '10.0.0.3', 'controller')],
      trustOf('a'),
    );
    const alone = buildNatsConfig('a', CONTROLLER_DEFAULTS, [], trustOf('a'));
    const moved = buildNatsConfig(
      'a',
      { ...CONTROLLER_DEFAULTS, nats: { ...CONTROLLER_DEFAULTS.nats, listen: '0.0.0.0:4333' } },
      [member('b', '10.0.0.2', 'controller')],
      trustOf('a'),
    );
    // Users come and go with a reload (admission, revocation): no restart.
    const moreUsers = buildNatsConfig(
      'a',
      CONTROLLER_DEFAULTS,
      [member('a', '10.0.0.1', 'controller'), member('b', '10.0.0.2', 'controller')],
      {
        ...trustOf('a'),
        admitted: ROSTER,
      },
    );
    expect(restartKey(moreUsers)).toBe(restartKey(three));
    expect(restartKey(more)).toBe(restartKey(three));
    expect(restartKey(alone)).not.toBe(restartKey(three)); // cluster mode on or off
    expect(restartKey(moved)).not.toBe(restartKey(three));
  });

  it('turns a wildcard listen address into a loopback URL', () => {
    expect(localUrl('nats', '0.0.0.0:4222')).toBe('nats://127.0.0.1:4222');
    expect(localUrl('nats', '[::]:4222')).toBe('nats://[::1]:4222');
    expect(localUrl('http', '127.0.0.3:8222')).toBe('http://127.0.0.3:8222');
  });
});
