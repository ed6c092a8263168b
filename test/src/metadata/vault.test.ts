/**
 * Minting a wrapped secret_id. A fake Vault on 127.0.0.1 stands in for the real one because no
 * Vault binary can be installed on the test machines (it is not in Debian; HashiCorp's repository
 * is not reachable here); it checks the request's shape against Vault's API docs
 * (POST /v1/auth/<mount>/role/<name>/secret-id, X-Vault-Token, X-Vault-Wrap-TTL) and answers the way
 * Vault does.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { mintWrappedSecretId, toCidr, VaultError, type MintWrappedSecretIdOptions } from '../../../src/metadata/vault.js';

const CONTROLLER_TOKEN = 'hvs.controller-token-never-logged';
const WRAPPING_TOKEN = 'hvs.CAESIwrapped';

interface Seen {
  method?: string;
  url?: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

/** Starts a fake Vault whose answer `respond` decides; returns its address and what it saw. */
async function fakeVault(respond: (res: ServerResponse) => void): Promise<{ address: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: text ? JSON.parse(text) : undefined });
      respond(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  onTestFinished(() => server.closeAllConnections());
  return { address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function json(status: number, body: unknown): (res: ServerResponse) => void {
  return (res) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
}

// Vault's answer to a wrapped request (api-docs: response wrapping).
const WRAPPED = {
  request_id: '',
  lease_id: '',
  lease_duration: 0,
  renewable: false,
  data: null,
  warnings: null,
  wrap_info: {
    token: WRAPPING_TOKEN,
    accessor: 'acc',
    ttl: 900,
    creation_time: '2026-11-25T10:00:00Z',
    creation_path: 'auth/approle/role/instances/secret-id',
  },
};

function options(address: string, extra: Partial<MintWrappedSecretIdOptions> = {}): MintWrappedSecretIdOptions {
  return {
    address,
    token: CONTROLLER_TOKEN,
    approlePath: 'auth/approle',
    roleName: 'instances',
    wrapTtl: '15m',
    cidr: '10.0.0.21',
    ...extra,
  };
}

/** The error `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<VaultError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VaultError);
  return err as VaultError;
}

describe('mintWrappedSecretId', () => {
  it('asks for a single-use secret_id bound to the instance, wrapped, and returns the wrapping token', async () => {
    const vault = await fakeVault(json(200, WRAPPED));
    const token = await mintWrappedSecretId(options(`${vault.address}/`, { metadata: { instance_id: 'i-0123456789abcdef0' } }));
    expect(token).toBe(WRAPPING_TOKEN);
    expect(vault.seen).toHaveLength(1);
    const [req] = vault.seen;
    expect(req?.method).toBe('POST');
    expect(req?.url).toBe('/v1/auth/approle/role/instances/secret-id');
    expect(req?.headers['x-vault-token']).toBe(CONTROLLER_TOKEN);
    expect(req?.headers['x-vault-wrap-ttl']).toBe('15m');
    expect(req?.headers['content-type']).toBe('application/json');
    expect(req?.body).toEqual({
      cidr_list: ['10.0.0.21/32'],
      token_bound_cidrs: ['10.0.0.21/32'],
      num_uses: 1,
      metadata: '{"instance_id":"i-0123456789abcdef0"}',
    });
  });

  it('passes the secret_id TTL, another mount and an escaped role name', async () => {
    const vault = await fakeVault(json(200, WRAPPED));
    await mintWrappedSecretId(
      options(vault.address, { approlePath: '/auth/lab-approle/', roleName: 'web servers', secretIdTtl: '1h', cidr: 'fd00::21' }),
    );
    expect(vault.seen[0]?.url).toBe('/v1/auth/lab-approle/role/web%20servers/secret-id');
    expect(vault.seen[0]?.body).toEqual({ cidr_list: ['fd00::21/128'], token_bound_cidrs: ['fd00::21/128'], num_uses: 1, ttl: '1h' });
  });

  it("reports Vault's own errors with the status, and never a token", async () => {
    const vault = await fakeVault(json(403, { errors: ['1 error occurred:\n\t* permission denied\n\n'] }));
    const err = await failure(mintWrappedSecretId(options(vault.address)));
    expect(err.status).toBe(403);
    expect(err.message).toContain(`POST ${vault.address}/v1/auth/approle/role/instances/secret-id: Vault answered 403: 1 error occurred`);
    expect(err.message).toContain('permission denied');
    expect(err.message).not.toContain(CONTROLLER_TOKEN);
  });

  it('refuses an answer that is not wrapped, without repeating the bare secret_id', async () => {
    const vault = await fakeVault(
      json(200, { ...WRAPPED, wrap_info: null, data: { secret_id: 'bare-secret-id', secret_id_accessor: 'a' } }),
    );
    const err = await failure(mintWrappedSecretId(options(vault.address)));
    expect(err.message).toContain("Vault's answer has no wrap_info.token");
    expect(err.message).not.toContain('bare-secret-id');
  });

  it('copes with a proxy error page', async () => {
    const vault = await fakeVault((res) => {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      res.end('<html>bad gateway</html>');
    });
    const err = await failure(mintWrappedSecretId(options(vault.address)));
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/Vault answered 502$/);
  });

  it('gives up after its timeout', async () => {
    const vault = await fakeVault(() => {
      // never answers
    });
    const err = await failure(mintWrappedSecretId(options(vault.address, { timeoutMs: 200 })));
    expect(err.status).toBeUndefined();
    expect(err.cause).toBeDefined();
  });

  it('reports an unreachable Vault', async () => {
    const vault = await fakeVault(json(200, WRAPPED));
    const address = vault.address.replace(/:\d+$/, ':1');
    const err = await failure(mintWrappedSecretId(options(address)));
    expect(err.message).toContain(`POST ${address}/v1/auth/approle/role/instances/secret-id: fetch failed`);
  });

  it('uses an injected fetch', async () => {
    const calls: string[] = [];
    const fake: typeof fetch = async (url) => {
      calls.push(url instanceof Request ? url.url : url.toString());
      return new Response(JSON.stringify(WRAPPED), { status: 200 });
    };
    expect(await mintWrappedSecretId(options('https://vault.lab:8200', { fetch: fake }))).toBe(WRAPPING_TOKEN);
    expect(calls).toEqual(['https://vault.lab:8200/v1/auth/approle/role/instances/secret-id']);
  });
});

describe('toCidr', () => {
  it.each([
    ['10.0.0.21', '10.0.0.21/32'],
    ['10.0.0.21/32', '10.0.0.21/32'],
    ['10.0.0.0/24', '10.0.0.0/24'],
    ['fd00::21', 'fd00::21/128'],
  ])('%s → %s', (input, cidr) => {
    expect(toCidr(input)).toBe(cidr);
  });

  it.each(['', 'web-1', '10.0.0.21/33', '10.0.0.21/', '10.0.0.1/8/1', 'fd00::1/129'])('refuses %j', (input) => {
    expect(() => toCidr(input)).toThrow(VaultError);
  });
});
