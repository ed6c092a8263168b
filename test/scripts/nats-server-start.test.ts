/**
 * scripts/lib/nats-server.ts: a port `freePort` picked that another process takes before
 * nats-server binds it (a race on a busy machine) is picked again instead of failing the test.
 * (A taken client port cannot be shown this way: the readiness probe would reach the squatter.)
 */
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test, vi } from 'vitest';
import { natsServerAvailable, startNatsServer } from '../../scripts/lib/nats-server.js';
import * as ports from '../../scripts/lib/ports.js';

const dir = mkdtempSync(path.join(tmpdir(), 'nats-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!natsServerAvailable())('startNatsServer', () => {
  test('a cluster port taken between the pick and the bind is picked again', { timeout: 30_000 }, async () => {
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const taken = (squatter.address() as net.AddressInfo).port;
    const real = ports.freePort;
    // The client port first, then the cluster port: that one is taken.
    const pick = vi
      .spyOn(ports, 'freePort')
      .mockImplementation(real)
      .mockImplementationOnce(real)
      .mockImplementationOnce(async () => taken);
    let server: Awaited<ReturnType<typeof startNatsServer>> | undefined;
    try {
      // A route to a neighbour that is not there: the server still starts, with its cluster listener.
      server = await startNatsServer({ name: 'race', dir, routes: [`nats://127.0.0.1:${await real()}`] });
      expect(server.clusterPort).not.toBe(taken);
      expect(pick).toHaveBeenCalledTimes(4);
    } finally {
      await server?.stop();
      pick.mockRestore();
      squatter.close();
    }
  });
});
