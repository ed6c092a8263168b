/**
 * The boot HTTP server as a stranger on the LAN would try it, on loopback: path traversal raw and
 * percent-encoded, a symlink out of a root, dot files, methods other than GET/HEAD, huge headers,
 * a slowloris that never finishes its headers, directories; and what it is for: the stub, a large
 * file streamed with the right length, HEAD, one byte range.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildStaticServer,
  parseRange,
  routeOf,
  safeSegments,
  startStaticServer,
  type StaticServer,
} from '../../../src/boot/static-server.js';
import { exchange } from '../../helpers/raw-exchange.js';

const BIG = 24 * 1024 * 1024 + 123;

describe('the boot static server', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-boot-'));
  const image = path.join(tmp, 'image');
  const apt = path.join(tmp, 'apt');
  const stub = path.join(tmp, 'boot.ipxe');
  let server: StaticServer;
  let bigSha: string;
  const get = (p: string, init?: RequestInit) => fetch(`${server.url}${p}`, init);
  const raw = (text: string, waitMs?: number) => exchange(server.port, Buffer.from(text, 'latin1'), waitMs);

  beforeAll(async () => {
    mkdirSync(image);
    mkdirSync(path.join(apt, 'pool'), { recursive: true });
    writeFileSync(stub, '#!ipxe\necho stub\n');
    writeFileSync(path.join(image, 'vmlinuz'), 'kernel\n');
    const big = Buffer.alloc(BIG);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    bigSha = createHash('sha256').update(big).digest('hex');
    writeFileSync(path.join(image, 'filesystem.squashfs'), big);
    writeFileSync(path.join(apt, 'Release'), 'Origin: mammatus\n');
    writeFileSync(path.join(apt, '.hidden'), 'no');
    writeFileSync(path.join(tmp, 'secret'), 'the gnupg key\n');
    symlinkSync(path.join(tmp, 'secret'), path.join(apt, 'leak'));
    symlinkSync(tmp, path.join(apt, 'up'));
    symlinkSync(path.join(apt, 'Release'), path.join(apt, 'Release-link'));
    server = await startStaticServer({
      host: '127.0.0.1',
      port: 0,
      routes: { files: { '/boot.ipxe': stub }, dirs: { '/live/amd64/': image, '/apt/': apt } },
      log: pino({ level: 'silent' }),
      limits: {
        headersTimeoutMs: 1000,
        requestTimeoutMs: 1500,
        keepAliveTimeoutMs: 1000,
        idleTimeoutMs: 3000,
        maxConnections: 64,
        maxConnectionsPerAddress: 8,
        checkIntervalMs: 250,
      },
    });
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('serves the stub, an image file and an apt file', async () => {
    const res = await get('/boot.ipxe');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('#!ipxe\necho stub\n');
    expect(await (await get('/live/amd64/vmlinuz')).text()).toBe('kernel\n');
    expect(await (await get('/apt/Release?x=1')).text()).toBe('Origin: mammatus\n');
    // A symlink that stays inside the root is fine.
    expect((await get('/apt/Release-link')).status).toBe(200);
  });

  it("serves apt's flat-repository paths: /apt/./Release (a lone . is this directory)", async () => {
    const { text } = await raw('GET /apt/./Release HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('Origin: mammatus');
  });

  it('streams a large file whole, with its exact Content-Length', async () => {
    const res = await get('/live/amd64/filesystem.squashfs');
    expect(res.headers.get('content-length')).toBe(String(BIG));
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(BIG);
    expect(createHash('sha256').update(body).digest('hex')).toBe(bigSha);
  });

  it('answers HEAD with the length and no body, and one byte range with 206', async () => {
    const head = await get('/live/amd64/filesystem.squashfs', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(BIG));
    expect(head.headers.get('accept-ranges')).toBe('bytes');
    const part = await get('/live/amd64/filesystem.squashfs', { headers: { range: 'bytes=4096-4099' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 4096-4099/${BIG}`);
    expect(Buffer.from(await part.arrayBuffer()).readUInt32LE(0)).toBe(4096);
    const past = await get('/live/amd64/vmlinuz', { headers: { range: 'bytes=100-' } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe('bytes */7');
  });

  it.each([
    '/../secret',
    '/apt/../secret',
    '/apt/%2e%2e/secret',
    '/apt/%2E%2E%2Fsecret',
    '/apt/..%2fsecret',
    '/live/amd64/%2e%2e/%2e%2e/secret',
    '/apt/%5c..%5csecret',
    '/apt/Release%00',
    '/apt/%zz',
    '/apt//Release',
    '/apt/%2e',
    '/apt/./.hidden',
    '/apt/.hidden',
    '/apt/leak',
    '/apt/up/secret',
    '/apt/',
    '/apt',
    '/apt/pool',
    '/live/amd64/',
    '/',
    '/secret',
    `/apt/${'a'.repeat(2000)}`,
  ])('refuses %s with 404 and nothing of the file', async (p) => {
    const { text } = await raw(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 (404|400) /);
    expect(text).not.toContain('gnupg');
  });

  it('refuses other methods with 405 and Allow', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PROPFIND']) {
      const res = await get('/boot.ipxe', { method, ...(method === 'POST' || method === 'PUT' ? { body: 'x' } : {}) });
      expect(res.status, method).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
    }
    const { text } = await raw('TRACE /boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 405 /);
  });

  it('refuses huge headers (431) and closes', async () => {
    const { text, closed } = await raw(`GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 431 /);
    expect(closed).toBe(true);
  });

  it('cuts off a client that never finishes its headers, in bounded time', async () => {
    const began = Date.now();
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect(server.port, '127.0.0.1', () => s.write('GET /boot.ipxe HTTP/1.1\r\nHost: x\r\n'));
      const timer = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 6000);
      s.on('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
      s.on('error', () => undefined);
      // Read what comes (the 408): a paused socket never sees the server's end.
      s.resume();
    });
    expect(closed).toBe(true);
    expect(Date.now() - began).toBeLessThan(5000);
  });

  it('closes an idle connection that sent nothing', async () => {
    const { closed } = await raw('', 6000);
    expect(closed).toBe(true);
  });

  it('drops a download the client stopped reading, after the idle timeout, and closes the file', async () => {
    // Its own server, to count its connections: a client that asks for the squashfs and never reads.
    const lone = buildStaticServer({ files: {}, dirs: { '/live/amd64/': image } }, pino({ level: 'silent' }), {
      headersTimeoutMs: 1000,
      requestTimeoutMs: 1500,
      keepAliveTimeoutMs: 1000,
      idleTimeoutMs: 1500,
      maxConnections: 8,
      maxConnectionsPerAddress: 8,
      checkIntervalMs: 250,
    });
    await new Promise<void>((r) => lone.listen(0, '127.0.0.1', r));
    const port = (lone.address() as net.AddressInfo).port;
    const count = () => new Promise<number>((r) => lone.getConnections((_e, n) => r(n)));
    const squashFds = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).endsWith('filesystem.squashfs');
        } catch {
          return false;
        }
      }).length;
    const client = net.connect(port, '127.0.0.1', () => client.write('GET /live/amd64/filesystem.squashfs HTTP/1.1\r\nHost: x\r\n\r\n'));
    client.pause();
    client.on('error', () => undefined);
    try {
      // Bounded waits, not fixed sleeps: the machine is shared and may be slow.
      const opened = Date.now();
      while (squashFds() === 0 && Date.now() - opened < 3000) await new Promise((r) => setTimeout(r, 50));
      expect(await count()).toBe(1);
      expect(squashFds()).toBe(1);
      const began = Date.now();
      while ((await count()) > 0 && Date.now() - began < 6000) await new Promise((r) => setTimeout(r, 100));
      expect(await count()).toBe(0);
      expect(Date.now() - began).toBeLessThan(5000);
      const dropped = Date.now();
      while (squashFds() > 0 && Date.now() - dropped < 2000) await new Promise((r) => setTimeout(r, 50));
      expect(squashFds()).toBe(0);
    } finally {
      client.destroy();
      await new Promise((r) => lone.close(r));
    }
  });

  it('still serves after all that', async () => {
    expect((await get('/boot.ipxe')).status).toBe(200);
  });
});

describe('boot server parsing', () => {
  it('splits only safe paths', () => {
    expect(safeSegments('/live/amd64/vmlinuz')).toEqual(['live', 'amd64', 'vmlinuz']);
    expect(safeSegments('/apt/pool/a%2Bb.deb')).toEqual(['apt', 'pool', 'a+b.deb']);
    for (const bad of ['', 'x', '/a/../b', '/a/%2e%2e/b', '/a%2fb', '/a/', '/.x', '/a\\b', '/%00', '/%E0%A4%A'])
      expect(safeSegments(bad), bad).toBeUndefined();
  });

  it('routes exact files and prefixes only', () => {
    const routes = { files: { '/boot.ipxe': '/s/boot.ipxe' }, dirs: { '/apt/': '/r' } };
    expect(routeOf(routes, '/boot.ipxe')).toEqual({ root: '/s/boot.ipxe', file: '/s/boot.ipxe' });
    expect(routeOf(routes, '/apt/pool/x.deb')).toEqual({ root: '/r', file: '/r/pool/x.deb' });
    expect(routeOf(routes, '/aptx/y')).toBeUndefined();
    expect(routeOf(routes, '/boot.ipxe/x')).toBeUndefined();
  });

  it('parses one byte range and ignores the rest', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=50-500', 100)).toEqual({ start: 50, end: 99 });
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-1,5-6', 100)).toBeUndefined();
    expect(parseRange('bytes=9-1', 100)).toBeUndefined();
    expect(parseRange('items=0-1', 100)).toBeUndefined();
    expect(parseRange(undefined, 100)).toBeUndefined();
  });
});
