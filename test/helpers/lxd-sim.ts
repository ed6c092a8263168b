/**
 * A stateful LXD on top of the fake socket server, for the role's unit tests: storage pools,
 * profiles with ETags, and instances that can be created, started, stopped and deleted, with the
 * answers (and failure texts) LXD 5.0.2 gives. Background operations come back already finished,
 * so the client never has to wait. `fail` makes the next request to a route fail.
 */
import type { LxdInstance, LxdProfile, LxdStoragePool } from '../../src/lxd/types.js';
import { asyncOp, lxdError, operation, startFakeLxd, sync, type Answer, type FakeLxd, type SeenRequest } from './fake-lxd.js';

/** An instance as the simulator keeps it. */
export interface SimInstance {
  name: string;
  config: Record<string, string>;
  profiles: string[];
  status: 'Running' | 'Stopped';
  /** IPv4 addresses reported on eth0 while running. */
  ips: string[];
}

/** The simulator and its state. */
export interface LxdSim {
  readonly fake: FakeLxd;
  readonly socketPath: string;
  readonly pools: Map<string, LxdStoragePool>;
  readonly profiles: Map<string, { value: LxdProfile; etag: number }>;
  readonly instances: Map<string, SimInstance>;
  /** The next request matching `METHOD /path` answers with this error. */
  fail(route: string, code: number, message: string): void;
  /** `METHOD /path` of every request, in order. */
  calls(): string[];
  close(): Promise<void>;
}

let opSeq = 0;
const done = (): Answer => asyncOp(operation(`op${++opSeq}`, 'Success'));
const failedOp = (err: string): Answer => asyncOp(operation(`op${++opSeq}`, 'Failure', { err }));

function asLxd(i: SimInstance): LxdInstance {
  const running = i.status === 'Running';
  const addresses = running ? i.ips.map((address) => ({ family: 'inet', address, netmask: '24', scope: 'global' })) : [];
  return {
    name: i.name,
    type: 'container',
    status: i.status,
    status_code: running ? 103 : 102,
    config: i.config,
    devices: {},
    profiles: i.profiles,
    state: {
      status: i.status,
      status_code: running ? 103 : 102,
      pid: running ? 4242 : 0,
      processes: running ? 10 : 0,
      network: running
        ? { eth0: { addresses, hwaddr: i.config['volatile.eth0.hwaddr'] ?? '', host_name: '', mtu: 1500, state: 'up', type: 'broadcast' } }
        : null,
    },
  };
}

/** Starts a simulator with an empty LXD (no pool, only LXD's own empty `default` profile). */
export async function startLxdSim(): Promise<LxdSim> {
  const fake = await startFakeLxd();
  const pools = new Map<string, LxdStoragePool>();
  const profiles = new Map<string, { value: LxdProfile; etag: number }>([
    ['default', { value: { name: 'default', config: {}, devices: {} }, etag: 1 }],
  ]);
  const instances = new Map<string, SimInstance>();
  const failures = new Map<string, Answer>();
  const json = (r: SeenRequest) => JSON.parse(r.body.toString() || 'null') as Record<string, unknown>;

  const handle = (r: SeenRequest): Answer => {
    const failure = failures.get(`${r.method} ${r.path}`);
    if (failure) {
      failures.delete(`${r.method} ${r.path}`);
      return failure;
    }
    const parts = r.path.split('/').map(decodeURIComponent); // ['', '1.0', kind, name, sub]
    const [kind, name, sub] = [parts[2], parts[3], parts[4]];
    if (r.path === '/1.0')
      return sync({
        api_extensions: ['network_type_macvlan', 'cloud_init'],
        api_status: 'stable',
        api_version: '1.0',
        auth: 'trusted',
        config: {},
      });
    if (kind === 'storage-pools') {
      if (r.method === 'POST') {
        const body = json(r) as unknown as LxdStoragePool;
        if (pools.has(body.name)) return lxdError(409, 'Storage pool already exists');
        pools.set(body.name, { ...body, config: body.config ?? {} });
        return sync(null);
      }
      const pool = pools.get(name ?? '');
      return pool ? sync(pool) : lxdError(404, 'Storage pool not found');
    }
    if (kind === 'profiles') {
      if (r.method === 'POST') {
        const body = json(r) as unknown as LxdProfile;
        if (profiles.has(body.name)) return lxdError(500, 'Error inserting "x" into database: The profile already exists');
        profiles.set(body.name, { value: body, etag: 1 });
        return sync(null);
      }
      const p = profiles.get(name ?? '');
      if (!p) return lxdError(404, 'Profile not found');
      if (r.method === 'PUT') {
        const ifMatch = r.headers['if-match'];
        if (ifMatch !== undefined && ifMatch !== `"${p.etag}"`)
          return lxdError(412, `ETag doesn't match: ${String(ifMatch)} vs "${p.etag}"`);
        profiles.set(p.value.name, { value: { ...(json(r) as unknown as LxdProfile), name: p.value.name }, etag: p.etag + 1 });
        return sync(null);
      }
      return { ...(sync(p.value) as object), headers: { ETag: `"${p.etag}"` } };
    }
    if (kind === 'instances') {
      if (!name && r.method === 'GET') return sync([...instances.values()].sort((a, b) => a.name.localeCompare(b.name)).map(asLxd));
      if (!name && r.method === 'POST') {
        const body = json(r) as { name: string; config?: Record<string, string>; profiles?: string[]; source: { alias?: string } };
        if (instances.has(body.name))
          return failedOp(`Failed creating instance record: Add instance info to the database: This "instances" entry already exists`);
        if (body.source.alias === 'missing') return lxdError(404, 'Image alias not found');
        instances.set(body.name, { name: body.name, config: body.config ?? {}, profiles: body.profiles ?? [], status: 'Stopped', ips: [] });
        return done();
      }
      const inst = instances.get(name ?? '');
      if (!inst) return lxdError(404, 'Instance not found');
      if (sub === 'state' && r.method === 'PUT') {
        const { action } = json(r) as { action: string };
        if (action === 'start' && inst.status === 'Running') return failedOp('The instance is already running');
        if (action === 'stop' && inst.status === 'Stopped') return failedOp('The instance is already stopped');
        inst.status = action === 'start' ? 'Running' : 'Stopped';
        return done();
      }
      if (r.method === 'DELETE') {
        if (inst.status === 'Running') return lxdError(400, 'Instance is running');
        instances.delete(inst.name);
        return done();
      }
      return sync(asLxd(inst));
    }
    return lxdError(404, 'not found');
  };
  fake.fallback(handle);
  return {
    fake,
    socketPath: fake.socketPath,
    pools,
    profiles,
    instances,
    fail: (route, code, message) => void failures.set(route, lxdError(code, message)),
    calls: () => fake.requests.map((r) => `${r.method} ${r.path}`),
    close: () => fake.close(),
  };
}
