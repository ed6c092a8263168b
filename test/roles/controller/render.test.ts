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
import { CONTROLLER_DEFAULTS } from '../../../roles/controller/config.js';
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
    members?: Member[];
  };
  // The agent hands roles members sorted by name; do the same so fixtures can be written in any order.
  const members = [...(raw.members ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1));
  return { node: raw.node, config: raw.config ?? {}, members };
}

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
    for (const f of files) expect(f.content.startsWith('# managed by mammatus role=controller\n')).toBe(true);
  });
});

describe('the rendered nats-server config', () => {
  it('runs one controller standalone: no cluster block, JetStream in the default store, 2 MiB payloads', () => {
    const conf = confOf(loadFixture('single'));
    expect(conf).toEqual({
      server_name: 'ctl-1',
      listen: '0.0.0.0:4222',
      http: '127.0.0.1:8222',
      max_payload: 2 * 1024 * 1024,
      logtime: false,
      jetstream: { store_dir: '/var/lib/mammatus/nats' },
    });
  });

  it('clusters three controllers: routes to the two others, sorted, at the cluster port', () => {
    const conf = confOf(loadFixture('three'));
    expect(conf.cluster).toEqual({
      name: 'mammatus',
      listen: '0.0.0.0:6222',
      routes: ['nats-route://10.88.0.10:6222', 'nats-route://10.88.0.12:6222'],
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
    expect(confOf({ node: 'me', config: {}, members }).cluster).toBeUndefined();
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
    expect(() => buildNatsConfig('has space', CONTROLLER_DEFAULTS, [])).toThrow(/cannot be a NATS server name/);
  });

  it('reports an invalid setting as a SettingsError naming the key', () => {
    expect(() => renderController({ node: 'n', config: { nats: { listen: 'nope' } }, members: [] })).toThrow(SettingsError);
    expect(() => renderController({ node: 'n', config: { nats: { listen: 'nope' } }, members: [] })).toThrow(
      /^roles\.controller\.nats\.listen: /,
    );
  });
});

describe('reading the config back', () => {
  const three = buildNatsConfig('a', CONTROLLER_DEFAULTS, [member('a', '10.0.0.1', 'controller'), member('b', '10.0.0.2', 'controller')]);

  it('parses what it rendered, and nothing else', () => {
    expect(parseNatsConf(renderNatsConf(three))).toEqual(three);
    expect(parseNatsConf('port: 4222\n')).toBeUndefined();
    expect(parseNatsConf('# managed\n[1]\n')).toBeUndefined();
  });

  it('asks for a restart only when more than the routes changed', () => {
    const more = buildNatsConfig('a', CONTROLLER_DEFAULTS, [member('b', '10.0.0.2', 'controller'), member('c', '10.0.0.3', 'controller')]);
    const alone = buildNatsConfig('a', CONTROLLER_DEFAULTS, []);
    const moved = buildNatsConfig('a', { ...CONTROLLER_DEFAULTS, nats: { ...CONTROLLER_DEFAULTS.nats, listen: '0.0.0.0:4333' } }, [
      member('b', '10.0.0.2', 'controller'),
    ]);
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
