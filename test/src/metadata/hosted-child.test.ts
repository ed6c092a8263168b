/**
 * What the agent hands the metadata service's child: the secrets themselves, read as root, in place
 * of the paths the unprivileged child could not read (docs/security.md, privilege separation).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { metadataChildInit } from '../../../src/metadata/hosted.js';
import { proxyInit } from '../../../roles/gateway/metadata-proxy.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-child-init-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = 'ab'.repeat(32);

function file(name: string, content: string, mode: number): string {
  const p = path.join(dir, name);
  writeFileSync(p, content, { mode });
  return p;
}

describe('metadataChildInit', () => {
  it('replaces proxy_secret_file with the secret and reads the Vault token; keeps the rest', async () => {
    const secretFile = file('secret', `${SECRET}\n`, 0o600);
    const tokenFile = file('vault.token', 's.vault-token\n', 0o600);
    const section = {
      proxy_secret_file: secretFile,
      domain: 'example',
      vendor_data: { vault: { address: 'http://10.0.0.2:8200', role_id: 'r', role_name: 'n', token_file: tokenFile } },
    };
    const init = await metadataChildInit(
      section,
      { node: 'ctl-1', natsUrl: 'nats://127.0.0.1:4222', credentials: { seed: 'SUSEED' } },
      'warn',
    );
    expect(init).toMatchObject({
      type: 'init',
      service: 'metadata',
      level: 'warn',
      natsUrl: 'nats://127.0.0.1:4222',
      seed: 'SUSEED',
      vaultToken: 's.vault-token',
      section: { proxy_secret: SECRET, domain: 'example' },
    });
    expect(init.section).not.toHaveProperty('proxy_secret_file');
  });

  it('refuses a secret file others can read, before anything is spawned', async () => {
    const open = file('open-secret', SECRET, 0o644);
    await expect(metadataChildInit({ proxy_secret_file: open }, { node: 'n', natsUrl: 'nats://127.0.0.1:4222' }, 'info')).rejects.toThrow(
      /readable by others|0644|chmod/,
    );
  });
});

describe("the gateway's proxyInit", () => {
  it('reads the secret at each launch and sends it in place of its path', () => {
    const secretFile = file('gw-secret', `${SECRET}\n`, 0o600);
    const conf = `log: { level: info }\nmetadata:\n  proxy_secret_file: ${secretFile}\n  proxy: { listen: 0.0.0.0:8776, upstreams: [http://10.0.0.2:8775] }\n`;
    const init = proxyInit(conf, 'debug');
    expect(init()).toEqual({
      type: 'init',
      service: 'metadata-proxy',
      level: 'debug',
      section: { proxy_secret: SECRET, proxy: { listen: '0.0.0.0:8776', upstreams: ['http://10.0.0.2:8775'] } },
    });
    writeFileSync(secretFile, `${'cd'.repeat(32)}\n`);
    expect((init().section as { proxy_secret: string }).proxy_secret).toBe('cd'.repeat(32));
  });

  it('throws when the secret file is gone (the child is then not left running without it)', () => {
    const init = proxyInit(`metadata: { proxy_secret_file: ${path.join(dir, 'missing')} }\n`);
    expect(() => init()).toThrow(/ENOENT/);
  });
});
