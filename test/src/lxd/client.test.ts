/** The LXD client against a fake LXD on a unix socket: envelopes, operations, ETags, error mapping. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LxdBadRequestError,
  LxdClient,
  LxdConflictError,
  LxdConnectionError,
  LxdError,
  LxdForbiddenError,
  LxdMissingExtensionError,
  LxdNotFoundError,
  LxdOperationError,
  LxdPreconditionFailedError,
  LxdProtocolError,
  LxdTimeoutError,
} from '../../../src/lxd/client.js';
import { asyncOp, lxdError, operation, startFakeLxd, sync, type FakeLxd } from '../../helpers/fake-lxd.js';

let lxd: FakeLxd;
let client: LxdClient;
beforeEach(async () => {
  lxd = await startFakeLxd();
  client = new LxdClient({ socketPath: lxd.socketPath, requestTimeoutMs: 2000, operationTimeoutMs: 5000 });
});
afterEach(async () => {
  client.close();
  await lxd.close();
});

/** Rejection of `p`, asserted to happen. */
async function failure(p: Promise<unknown>): Promise<LxdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LxdError);
  return err as LxdError;
}

const SERVER = {
  api_extensions: ['network_type_macvlan', 'cloud_init'],
  api_status: 'stable',
  api_version: '1.0',
  auth: 'trusted',
  config: {},
};

describe('envelopes', () => {
  it('reads a sync answer and caches the server info; feature checks name what is missing', async () => {
    lxd.on('GET /1.0', () => sync(SERVER));
    expect((await client.serverInfo()).api_version).toBe('1.0');
    expect(await client.hasExtension('cloud_init')).toBe(true);
    expect(await client.hasExtension('instance_create_start')).toBe(false);
    await client.requireExtensions('network_type_macvlan');
    const err = await failure(client.requireExtensions('cloud_init', 'instance_create_start', 'devlxd_events'));
    expect(err).toBeInstanceOf(LxdMissingExtensionError);
    expect((err as LxdMissingExtensionError).missing).toEqual(['instance_create_start', 'devlxd_events']);
    expect(lxd.requests.filter((r) => r.path === '/1.0')).toHaveLength(1);
    await client.serverInfo(true);
    expect(lxd.requests.filter((r) => r.path === '/1.0')).toHaveLength(2);
  });

  it.each([
    [400, 'Invalid instance name', LxdBadRequestError],
    [403, 'not authorized', LxdForbiddenError],
    [404, 'Instance not found', LxdNotFoundError],
    [409, 'Alias "a" already exists', LxdConflictError],
    [412, "ETag doesn't match: x vs y", LxdPreconditionFailedError],
    // LXD 5.0 sends these as 500s: the client classifies them.
    [500, 'Error inserting "p" into database: The profile already exists', LxdConflictError],
    [500, 'Requested profile "nope" doesn\'t exist', LxdNotFoundError],
  ])('maps an error envelope %i (%s) to its class', async (code, message, cls) => {
    lxd.on('GET /1.0/instances/c1', () => lxdError(code, message));
    const err = await failure(client.getInstance('c1'));
    expect(err).toBeInstanceOf(cls);
    expect(err.status).toBe(code);
    expect(err.message).toBe(`GET /1.0/instances/c1: ${message}`);
  });

  it('keeps other server errors as a plain LxdError with the status', async () => {
    lxd.on('GET /1.0/instances/c1', () => lxdError(500, 'disk on fire'));
    const err = await failure(client.getInstance('c1'));
    expect(err.constructor).toBe(LxdError);
    expect(err.status).toBe(500);
  });

  it('rejects answers that are not LXD envelopes', async () => {
    lxd.on('GET /1.0/profiles/a', () => ({ status: 200, text: '<html>proxy</html>' }));
    lxd.on('GET /1.0/profiles/b', () => ({ status: 200, json: { hello: 'world' } }));
    lxd.on('GET /1.0/profiles/c', () => ({ status: 200, json: { type: 'weird', metadata: null } }));
    lxd.on('GET /1.0/profiles/d', () => ({ status: 502, text: 'Bad Gateway' }));
    for (const name of ['a', 'b', 'c']) expect(await failure(client.getProfile(name))).toBeInstanceOf(LxdProtocolError);
    const err = await failure(client.getProfile('d'));
    expect(err.status).toBe(502);
    expect(err.message).toContain('Bad Gateway');
  });

  it('reports a missing daemon as LxdConnectionError', async () => {
    const gone = new LxdClient({ socketPath: path.join(os.tmpdir(), 'no-such-lxd', 'unix.socket') });
    const err = await failure(gone.serverInfo());
    expect(err).toBeInstanceOf(LxdConnectionError);
    expect(err.message).toContain('cannot reach LXD at');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    gone.close();
  });

  it('times out a request LXD never answers', async () => {
    const quick = new LxdClient({ socketPath: lxd.socketPath, requestTimeoutMs: 150 });
    lxd.on('GET /1.0', () => 'hang');
    const started = Date.now();
    expect(await failure(quick.serverInfo())).toBeInstanceOf(LxdTimeoutError);
    expect(Date.now() - started).toBeLessThan(1500);
    quick.close();
  });

  it('adds the project to every request but GET /1.0', async () => {
    const scoped = new LxdClient({ socketPath: lxd.socketPath, project: 'lab' });
    lxd.on('GET /1.0', () => sync(SERVER));
    lxd.on('GET /1.0/instances', () => sync([]));
    await scoped.serverInfo();
    await scoped.listInstances(true);
    expect(lxd.requests.map((r) => r.url)).toEqual(['/1.0', '/1.0/instances?recursion=2&project=lab']);
    scoped.close();
  });
});

describe('background operations', () => {
  it('creates an instance: sends the config as given, no "start", and waits until Success', async () => {
    let waits = 0;
    lxd.on('POST /1.0/instances', () => asyncOp(operation('op1', 'Running')));
    // The first wait ends with the operation still running (what LXD 5.0 does at its timeout).
    lxd.on('GET /1.0/operations/op1/wait', () => sync(operation('op1', ++waits < 2 ? 'Running' : 'Success')));
    const op = await client.createInstance({
      name: 'c1',
      profiles: ['default', 'mammatus-macvlan'],
      source: { type: 'image', alias: 'debian' },
      config: { 'volatile.eth0.hwaddr': '02:00:00:00:00:11', 'cloud-init.user-data': '#cloud-config\n', 'user.mammatus.id': 'i-1' },
    });
    expect(op.status).toBe('Success');
    expect(waits).toBe(2);
    const post = lxd.requests[0];
    expect(post.headers['content-type']).toBe('application/json');
    expect(JSON.parse(post.body.toString())).toEqual({
      type: 'container',
      name: 'c1',
      profiles: ['default', 'mammatus-macvlan'],
      source: { type: 'image', alias: 'debian' },
      config: { 'volatile.eth0.hwaddr': '02:00:00:00:00:11', 'cloud-init.user-data': '#cloud-config\n', 'user.mammatus.id': 'i-1' },
    });
    const wait = lxd.requests[1];
    expect(Number(wait.query.get('timeout'))).toBeGreaterThanOrEqual(1);
    expect(Number.isInteger(Number(wait.query.get('timeout')))).toBe(true);
  });

  it('rejects with LxdOperationError, carrying the operation, when it fails', async () => {
    lxd.on('PUT /1.0/instances/c1/state', () => asyncOp(operation('op2', 'Running', { description: 'Starting instance' })));
    lxd.on('GET /1.0/operations/op2/wait', () =>
      sync(
        operation('op2', 'Failure', {
          description: 'Starting instance',
          err: 'Failed to start device "eth0": Parent device "lan0" doesn\'t exist',
        }),
      ),
    );
    const err = await failure(client.startInstance('c1'));
    // "doesn't exist" inside a failed operation is not a missing object of this request.
    expect(err).toBeInstanceOf(LxdOperationError);
    expect(err.operation?.id).toBe('op2');
    expect(err.message).toMatch(/^PUT \/1.0\/instances\/c1\/state: operation op2 \(Starting instance\): Failed to start device/);
    expect(JSON.parse(lxd.requests[0].body.toString())).toEqual({ action: 'start' });
  });

  it.each([
    ['Failed creating instance record: Add instance info to the database: This "instances" entry already exists', LxdConflictError],
    ['The instance is already running', LxdConflictError],
    ['Image with same fingerprint already exists', LxdConflictError],
  ])('classifies the failure "%s"', async (reason, cls) => {
    lxd.on('POST /1.0/instances', () => asyncOp(operation('op3', 'Running')));
    lxd.on('GET /1.0/operations/op3/wait', () => sync(operation('op3', 'Failure', { err: reason })));
    const err = await failure(client.createInstance({ name: 'c1', source: { type: 'image', alias: 'debian' } }));
    expect(err).toBeInstanceOf(cls);
    expect(err.operation?.err).toBe(reason);
  });

  it('times out when the operation keeps running, and says which one', async () => {
    const quick = new LxdClient({ socketPath: lxd.socketPath, operationTimeoutMs: 300 });
    lxd.on('DELETE /1.0/instances/c1', () => asyncOp(operation('op4', 'Running', { description: 'Deleting instance' })));
    // Like LXD: hold the wait for its timeout, then answer with the running operation.
    lxd.on('GET /1.0/operations/op4/wait', async (req) => {
      await new Promise((r) => setTimeout(r, Math.min(Number(req.query.get('timeout')) * 1000, 400)));
      return sync(operation('op4', 'Running', { description: 'Deleting instance' }));
    });
    const started = Date.now();
    const err = await failure(quick.deleteInstance('c1'));
    expect(err).toBeInstanceOf(LxdTimeoutError);
    expect(err.operation?.id).toBe('op4');
    expect(err.message).toContain('op4 (Deleting instance) still running after 300 ms');
    expect(Date.now() - started).toBeLessThan(2000);
    quick.close();
  });

  it('times out when the wait itself never answers', async () => {
    lxd.on('GET /1.0/operations/op5/wait', () => 'hang');
    const started = Date.now();
    const err = await failure(client.waitOperation(operation('op5', 'Running'), { timeoutMs: 200 }));
    expect(err).toBeInstanceOf(LxdTimeoutError);
    expect(err.operation?.id).toBe('op5');
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('reports an operation LXD has already forgotten as not found', async () => {
    const err = await failure(client.waitOperation('/1.0/operations/gone'));
    expect(err).toBeInstanceOf(LxdNotFoundError);
  });

  it('stops with the clean-shutdown timeout and force, waiting at least as long as LXD may take', async () => {
    lxd.on('PUT /1.0/instances/c1/state', () => asyncOp(operation('op6', 'Running')));
    lxd.on('GET /1.0/operations/op6/wait', () => sync(operation('op6', 'Success')));
    await client.stopInstance('c1', { timeout: 5, force: true });
    expect(JSON.parse(lxd.requests[0].body.toString())).toEqual({ action: 'stop', timeout: 5, force: true });
  });
});

describe('ETags', () => {
  const profile = { name: 'mammatus', description: '', config: {}, devices: { eth0: { type: 'nic', nictype: 'macvlan', parent: 'lan0' } } };

  it('returns the ETag with GET and sends it back as If-Match; a stale one is a 412', async () => {
    let current = '"v1"';
    lxd.on('GET /1.0/profiles/mammatus', () => ({ ...(sync(profile) as object), headers: { ETag: current } }));
    lxd.on('PUT /1.0/profiles/mammatus', (req) => {
      if (req.headers['if-match'] !== undefined && req.headers['if-match'] !== current)
        return lxdError(412, `ETag doesn't match: ${current} vs ${req.headers['if-match']}`);
      current = '"v2"';
      return sync({});
    });
    const got = await client.getProfile('mammatus');
    expect(got).toEqual({ value: profile, etag: '"v1"' });
    await client.updateProfile('mammatus', { ...got.value, description: 'first' }, { etag: got.etag });
    const err = await failure(client.updateProfile('mammatus', { ...got.value, description: 'second' }, { etag: got.etag }));
    expect(err).toBeInstanceOf(LxdPreconditionFailedError);
    await client.updateProfile('mammatus', { ...got.value, description: 'forced' });
    expect(lxd.requests.filter((r) => r.method === 'PUT').map((r) => r.headers['if-match'])).toEqual(['"v1"', '"v1"', undefined]);
  });

  it('sends If-Match on PATCH too', async () => {
    lxd.on('PATCH /1.0/profiles/mammatus', () => sync({}));
    await client.patchProfile('mammatus', { config: { 'user.a': 'b' } }, { etag: '"abc"' });
    expect(lxd.requests[0].headers['if-match']).toBe('"abc"');
    expect(JSON.parse(lxd.requests[0].body.toString())).toEqual({ config: { 'user.a': 'b' } });
  });
});

describe('images', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'lxd-image-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function acceptUpload(fingerprint: string): void {
    lxd.on('POST /1.0/images', () => asyncOp(operation('up', 'Running', { description: 'Downloading image' })));
    lxd.on('GET /1.0/operations/up/wait', () => sync(operation('up', 'Success', { metadata: { fingerprint, size: 11 } })));
  }

  it('uploads a unified tarball as it is and points the alias at it', async () => {
    const file = path.join(dir, 'deb.tar.gz');
    await writeFile(file, 'tarball-one');
    acceptUpload('f1');
    lxd.on('POST /1.0/images/aliases', () => sync(null));
    expect(await client.importImage({ unified: file }, { alias: 'debian', properties: { os: 'debian', release: 'bookworm' } })).toEqual({
      fingerprint: 'f1',
      size: 11,
    });
    const [upload, , alias] = lxd.requests;
    expect(upload.body.toString()).toBe('tarball-one');
    expect(upload.headers['content-type']).toBe('application/octet-stream');
    expect(upload.headers['content-length']).toBe('11');
    expect(upload.headers['x-lxd-filename']).toBe('deb.tar.gz');
    expect(upload.headers['x-lxd-public']).toBe('false');
    expect(upload.headers['x-lxd-properties']).toBe('os=debian&release=bookworm');
    expect(JSON.parse(alias.body.toString())).toEqual({ name: 'debian', target: 'f1', description: '' });
  });

  it('uploads a split image as multipart metadata + rootfs', async () => {
    await writeFile(path.join(dir, 'meta.tar.xz'), 'META');
    await writeFile(path.join(dir, 'rootfs.squashfs'), Buffer.from([0, 1, 2, 255]));
    acceptUpload('f2');
    await client.importImage({ metadata: path.join(dir, 'meta.tar.xz'), rootfs: path.join(dir, 'rootfs.squashfs') });
    const upload = lxd.requests[0];
    expect(upload.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(Number(upload.headers['content-length'])).toBe(upload.body.length);
    const form = await new Response(upload.body, { headers: { 'content-type': upload.headers['content-type']! } }).formData();
    const meta = form.get('metadata') as File;
    const rootfs = form.get('rootfs') as File;
    expect(meta.name).toBe('meta.tar.xz');
    expect(await meta.text()).toBe('META');
    expect(rootfs.name).toBe('rootfs.squashfs');
    expect([...new Uint8Array(await rootfs.arrayBuffer())]).toEqual([0, 1, 2, 255]);
  });

  it('re-points an alias that names another image only when asked, with its ETag', async () => {
    const file = path.join(dir, 'deb.tar.gz');
    await writeFile(file, 'tarball-two');
    acceptUpload('f3');
    lxd.on('POST /1.0/images/aliases', () => lxdError(409, 'Alias "debian" already exists'));
    lxd.on('GET /1.0/images/aliases/debian', () => ({ ...(sync({ name: 'debian', target: 'old' }) as object), headers: { ETag: '"a1"' } }));
    lxd.on('PUT /1.0/images/aliases/debian', () => sync(null));
    expect(await failure(client.importImage({ unified: file }, { alias: 'debian' }))).toBeInstanceOf(LxdConflictError);
    await client.importImage({ unified: file }, { alias: 'debian', replaceAlias: true });
    const put = lxd.requests.find((r) => r.method === 'PUT')!;
    expect(put.headers['if-match']).toBe('"a1"');
    expect(JSON.parse(put.body.toString())).toEqual({ target: 'f3', description: '' });
  });

  it('treats an alias that already names the imported image as done', async () => {
    const file = path.join(dir, 'deb.tar.gz');
    await writeFile(file, 'x');
    acceptUpload('f4');
    lxd.on('POST /1.0/images/aliases', () => lxdError(409, 'Alias "debian" already exists'));
    lxd.on('GET /1.0/images/aliases/debian', () => sync({ name: 'debian', target: 'f4' }));
    await client.importImage({ unified: file }, { alias: 'debian' });
    expect(lxd.requests.some((r) => r.method === 'PUT')).toBe(false);
  });
});

describe('instances', () => {
  it('reads the state with addresses, and lists instances with state', async () => {
    const state = {
      status: 'Running',
      status_code: 103,
      pid: 42,
      processes: 9,
      network: {
        eth0: {
          addresses: [
            { family: 'inet', address: '10.77.0.11', netmask: '24', scope: 'global' },
            { family: 'inet6', address: 'fe80::ff:fe77:11', netmask: '64', scope: 'link' },
          ],
          hwaddr: '02:00:00:77:00:11',
          host_name: '',
          mtu: 1500,
          state: 'up',
          type: 'broadcast',
        },
      },
    };
    lxd.on('GET /1.0/instances/c1/state', () => sync(state));
    lxd.on('GET /1.0/instances', () => sync([{ name: 'c1', status: 'Running', state }]));
    expect((await client.getInstanceState('c1')).network?.eth0?.addresses[0]?.address).toBe('10.77.0.11');
    expect((await client.listInstances(true))[0].state?.pid).toBe(42);
    expect(lxd.requests[1].url).toBe('/1.0/instances?recursion=2');
  });

  it('escapes names into one path segment', async () => {
    lxd.on('GET /1.0/instances/a%2Fb', () => sync({ name: 'a/b' }));
    expect((await client.getInstance('a/b')).value.name).toBe('a/b');
  });
});
