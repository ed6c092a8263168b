/**
 * The SNS endpoint guard (issue 16): which addresses http(s) deliveries may reach, and that a
 * delivery goes to the address that was checked even when DNS answers differently afterwards.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createEndpointGuard, EndpointRefused, postPinned, type PinnedAddress } from '../../../../src/messaging/engine/endpoint-guard.js';

const noLocals = () => [];

describe('IP literals (checked at Subscribe and at delivery)', () => {
  const guard = createEndpointGuard({ localAddresses: noLocals });
  const refused: [string, RegExp][] = [
    ['http://127.0.0.1:8080/hook', /127\.0\.0\.1 is a loopback address/],
    ['http://169.254.169.254/latest/meta-data/', /link-local/],
    ['http://[::1]:8080/', /::1 is a loopback address/],
    ['http://10.1.2.3/', /private/],
    ['http://172.20.0.1/', /private/],
    ['http://192.168.1.1/', /private/],
    ['http://100.64.0.1/', /CGNAT/],
    ['http://0.0.0.0/', /unspecified/],
    ['http://[::]/', /unspecified/],
    ['http://224.0.0.1/', /multicast/],
    ['http://[ff02::1]/', /multicast/],
    ['http://[fe80::1]/', /link-local/],
    ['http://[fd00::1]/', /private/],
    ['http://255.255.255.255/', /reserved/],
    // Spellings that are loopback too (the URL parser normalises them).
    ['http://[::ffff:127.0.0.1]/', /loopback/],
    ['http://2130706433/', /127\.0\.0\.1 is a loopback/],
    ['http://0x7f.1/', /loopback/],
  ];
  for (const [url, why] of refused) {
    test(`${url} is refused`, async () => {
      expect(guard.literalRefusal(new URL(url))).toMatch(why);
      await expect(guard.pin(new URL(url))).rejects.toThrow(EndpointRefused);
    });
  }

  test('public addresses and host names pass the literal check', async () => {
    expect(guard.literalRefusal(new URL('http://198.51.100.7/'))).toBeUndefined();
    expect(guard.literalRefusal(new URL('http://[2001:db8::1]/'))).toBeUndefined();
    expect(guard.literalRefusal(new URL('http://localhost:8080/'))).toBeUndefined();
    expect(await guard.pin(new URL('http://198.51.100.7/'))).toEqual([{ address: '198.51.100.7', family: 4 }]);
  });

  test('allow-listed networks pass; deny adds networks; this machine is refused', async () => {
    const g = createEndpointGuard({
      allow: ['127.0.0.0/8', '::1', '10.9.0.0/16'],
      deny: ['198.51.100.0/24'],
      localAddresses: () => ['203.0.113.9'],
    });
    expect(g.literalRefusal(new URL('http://127.0.0.1:1/'))).toBeUndefined();
    expect(g.literalRefusal(new URL('http://[::1]:1/'))).toBeUndefined();
    expect(g.literalRefusal(new URL('http://10.9.1.1/'))).toBeUndefined();
    expect(g.literalRefusal(new URL('http://10.8.1.1/'))).toMatch(/private/);
    expect(g.literalRefusal(new URL('http://198.51.100.7/'))).toMatch(/refused by the configuration/);
    expect(g.literalRefusal(new URL('http://203.0.113.9/'))).toMatch(/address of this machine/);
    // The same address written as IPv4-mapped IPv6, and IPv4 reached through NAT64 or 6to4.
    expect(g.literalRefusal(new URL('http://[::ffff:203.0.113.9]:8222/'))).toMatch(/address of this machine/);
    expect(g.literalRefusal(new URL('http://[64:ff9b::7f00:1]/'))).toMatch(/NAT64/);
    expect(g.literalRefusal(new URL('http://[2002:7f00:1::]/'))).toMatch(/6to4/);
  });
});

describe('host names (checked at each delivery)', () => {
  const answers =
    (...list: PinnedAddress[][]) =>
    () => {
      let n = 0;
      return (_host: string) => Promise.resolve(list[Math.min(n++, list.length - 1)] ?? []);
    };

  test('a name resolving to loopback, or to any refused address, is refused', async () => {
    const guard = createEndpointGuard({ localAddresses: noLocals });
    await expect(guard.pin(new URL('http://localhost:1/'))).rejects.toThrow(/localhost resolves to .* loopback address/);
    const mixed = createEndpointGuard({
      localAddresses: noLocals,
      resolve: answers([
        { address: '198.51.100.7', family: 4 },
        { address: '10.0.0.5', family: 4 },
      ])(),
    });
    await expect(mixed.pin(new URL('http://mixed.test/'))).rejects.toThrow(/mixed\.test resolves to 10\.0\.0\.5 is a private address/);
    const none = createEndpointGuard({ resolve: () => Promise.reject(new Error('ENOTFOUND')) });
    await expect(none.pin(new URL('http://nowhere.test/'))).rejects.toThrow(/could not be resolved/);
  });

  test('an allow-listed name passes whatever it resolves to', async () => {
    const guard = createEndpointGuard({ allow: ['LocalHost'], localAddresses: noLocals });
    expect((await guard.pin(new URL('http://localhost:1/')))[0]?.address).toMatch(/^(127\.0\.0\.1|::1)$/);
  });

  test('DNS rebinding: the delivery goes to the address that was checked, not to a later answer', async () => {
    // Two servers on one port: 127.0.0.1 (allowed) and 127.0.0.2 (loopback, refused).
    const hits: { server: string; headers: IncomingHttpHeaders }[] = [];
    const serve = (name: string, host: string, port: number) =>
      new Promise<number>((resolve, reject) => {
        const server = createServer((req, res) => {
          hits.push({ server: name, headers: req.headers });
          req.resume();
          req.on('end', () => res.writeHead(204).end());
        });
        server.on('error', reject);
        server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
        onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
      });
    const port = await serve('checked', '127.0.0.1', 0);
    await serve('rebound', '127.0.0.2', port);
    // The name first resolves to the allowed address, then (rebinding) to the refused one.
    const guard = createEndpointGuard({
      allow: ['127.0.0.1'],
      localAddresses: noLocals,
      resolve: answers([{ address: '127.0.0.1', family: 4 }], [{ address: '127.0.0.2', family: 4 }])(),
    });
    const url = new URL(`http://rebind.test:${port}/hook`);
    const pinned = await guard.pin(url);
    expect(pinned).toEqual([{ address: '127.0.0.1', family: 4 }]);
    const status = await postPinned(url, pinned, { headers: { 'content-type': 'text/plain' }, body: 'x', timeoutMs: 5000 });
    expect(status).toBe(204);
    expect(hits).toHaveLength(1);
    expect(hits[0]?.server).toBe('checked');
    expect(hits[0]?.headers.host).toBe(`rebind.test:${port}`);
    // The next attempt resolves again and sees the refused answer.
    await expect(guard.pin(url)).rejects.toThrow(/127\.0\.0\.2 is a loopback address/);
    expect(hits).toHaveLength(1);
  });
});
