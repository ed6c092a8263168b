/**
 * The vendor-data document: golden output, which parts go out and why, shell quoting, the template
 * rules, loading the templates, and cloud-init 22.4's own parser splitting the document.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse } from 'yaml';
import {
  buildVendorData,
  CONSUL_BIND_TEMPLATE,
  fillTemplate,
  findTemplateDir,
  loadVendorDataTemplates,
  renderVendorDataParts,
  shellQuote,
  VendorDataTemplateError,
  wantsVaultPart,
} from '../../../src/metadata/vendor-data.js';
import { renderTelegrafConfig } from '../../../src/metadata/vendor-data-configs.js';
import { acmeDirectoryUrl, renderCaParts } from '../../../src/metadata/vendor-data-ca.js';
import { CA, FULL_SETTINGS, TEMPLATE_DIR, vendorInput } from './vendor-fixtures.js';
import { NO_TOMLLIB, readToml } from '../../helpers/toml.js';

const GOLDEN = join(import.meta.dirname, '__golden__', 'vendor-data');
const PYTHON = '/usr/bin/python3';
const hasCloudInit = spawnSync(PYTHON, ['-c', 'import cloudinit'], { stdio: 'ignore' }).status === 0;
const NO_CLOUD_INIT = `${PYTHON} cannot import cloudinit (apt-get install cloud-init)`;

/** A temporary directory removed after the test. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mammatus-vd-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface CloudInitPart {
  type: string;
  filename: string;
  payload: string;
  written: string | null;
}

/** The parts cloud-init's UserDataProcessor finds in `doc`, and the scripts its handler writes. */
function cloudInitParts(doc: string, cloudDir = tempDir()): CloudInitPart[] {
  const out = execFileSync(PYTHON, [join(import.meta.dirname, 'cloud-init-parts.py'), cloudDir], { input: doc });
  return JSON.parse(out.toString('utf8')) as CloudInitPart[];
}

// Values that would run code, end a quote or break a config file if pasted unquoted.
const HOSTILE = ["it's", '$(touch /tmp/pwned)', '`id`', 'a\nb', '"; exit 1; "', '\\', '${HOME}', "'", 'café ☁', ''];

describe('buildVendorData', () => {
  it('renders all three parts (golden)', async () => {
    await expect(buildVendorData(await vendorInput())).toMatchFileSnapshot(join(GOLDEN, 'full.mime'));
  });

  it('renders Consul only, with explicit servers and no gossip key (golden)', async () => {
    const input = await vendorInput({}, { consul: { servers: ['consul.lab.internal', '10.9.0.1'] }, telegraf: { enabled: false } });
    await expect(buildVendorData(input)).toMatchFileSnapshot(join(GOLDEN, 'consul-only.mime'));
  });

  it('is deterministic and changes its boundary with its content', async () => {
    const input = await vendorInput();
    expect(buildVendorData(input)).toBe(buildVendorData(await vendorInput()));
    const other = buildVendorData({ ...input, instance: { ...input.instance, name: 'web-2' } });
    const boundary = (doc: string): string => /boundary="([^"]+)"/.exec(doc)?.[1] ?? '';
    expect(boundary(other)).not.toBe(boundary(buildVendorData(input)));
  });

  it('is empty when every part is off', async () => {
    const input = await vendorInput({}, { consul: { enabled: false }, telegraf: { enabled: false } });
    expect(buildVendorData(input)).toBe('');
  });
});

describe('the CA parts', () => {
  it('come first when the cluster has a CA: ca_certs and the ACME directory (golden)', async () => {
    const doc = buildVendorData(await vendorInput({ ca: CA }));
    await expect(doc).toMatchFileSnapshot(join(GOLDEN, 'with-ca.mime'));
    expect(doc.indexOf('filename="mammatus-ca.cfg"')).toBeLessThan(doc.indexOf('filename="mammatus-consul.sh"'));
    // Without a CA the document is what it was.
    expect(buildVendorData(await vendorInput())).not.toContain('mammatus-ca');
  });

  it('go out alone when every other part is off', async () => {
    const input = await vendorInput({ ca: CA }, { consul: { enabled: false }, telegraf: { enabled: false } });
    expect(buildVendorData(input)).toMatch(/filename="mammatus-ca.cfg"[\s\S]*filename="mammatus-ca.sh"/);
  });

  it('are refused for a root that is not one PEM certificate or a URL that is not a directory, and left out', async () => {
    expect(() => renderCaParts({ ...CA, rootPem: `${CA.rootPem}${CA.rootPem}` })).toThrow(/not one PEM certificate/);
    expect(() => renderCaParts({ ...CA, rootPem: "-----BEGIN CERTIFICATE-----\n'; rm -rf /\n-----END CERTIFICATE-----" })).toThrow(
      /not one PEM/,
    );
    expect(() => renderCaParts({ ...CA, acmeDirectory: "https://ca.mammatus:9000/acme/x'y/directory" })).toThrow(/not an ACME directory/);
    expect(() => renderCaParts({ ...CA, acmeDirectory: 'http://ca.mammatus/acme/acme/directory' })).toThrow(/not an ACME directory/);
    expect(buildVendorData(await vendorInput({ ca: { ...CA, rootPem: 'junk' } }))).toBe(buildVendorData(await vendorInput()));
    expect(acmeDirectoryUrl(9443, 'hosts')).toBe('https://ca.mammatus:9443/acme/hosts/directory');
  });

  it('the script writes the root and the URL (run against a scratch directory)', () => {
    const script = renderCaParts(CA)[1].content;
    const dir = tempDir();
    const moved = script.replaceAll('/etc/mammatus', join(dir, 'etc'));
    execFileSync('sh', ['-c', moved]);
    expect(readFileSync(join(dir, 'etc', 'ca.crt'), 'utf8')).toBe(CA.rootPem);
    expect(readFileSync(join(dir, 'etc', 'acme-directory'), 'utf8')).toBe(`${CA.acmeDirectory}\n`);
  });
});

describe('renderVendorDataParts', () => {
  it('orders parts as cloud-init runs them and names their files', async () => {
    const { parts, skipped } = renderVendorDataParts(await vendorInput());
    expect(parts.map((p) => p.filename)).toEqual(['mammatus-consul.sh', 'mammatus-telegraf.sh', 'mammatus-vault.sh']);
    expect(skipped).toEqual([]);
    for (const p of parts) expect(p.content.startsWith('#!/bin/sh\n') && p.content.endsWith('\n')).toBe(true);
  });

  it('says why it leaves parts out', async () => {
    const noControllers = renderVendorDataParts(await vendorInput({ controllers: [], influxdb: [] }, { vault: { enabled: false } }));
    expect(noControllers.parts).toEqual([]);
    const noStore =
      'no controller runs InfluxDB (roles.controller.monitoring.store) and metadata.vendor_data.telegraf.influxdb_url is not set';
    expect(noControllers.skipped).toEqual([
      { name: 'consul', reason: 'no controller is known and metadata.vendor_data.consul.servers is not set' },
      { name: 'telegraf', reason: noStore },
      { name: 'vault', reason: 'metadata.vendor_data.vault.enabled is false' },
    ]);
    // Controllers whose store is Prometheus: Consul joins them, Telegraf has nowhere to write.
    const prometheusOnly = renderVendorDataParts(await vendorInput({ influxdb: undefined }, { vault: { enabled: false } }));
    expect(prometheusOnly.parts.map((p) => p.name)).toEqual(['consul']);
    expect(prometheusOnly.skipped[0]).toEqual({ name: 'telegraf', reason: noStore });
    const switched = renderVendorDataParts(await vendorInput({ parts: { telegraf: false, vault: true } }, {}));
    expect(switched.parts.map((p) => p.name)).toEqual(['consul']);
    expect(switched.skipped).toEqual([
      { name: 'telegraf', reason: 'switched off for this instance' },
      { name: 'vault', reason: 'metadata.vendor_data.vault.address or role_id is not set' },
    ]);
  });

  it('lets an instance switch a part on that the cluster has off', async () => {
    const { parts } = renderVendorDataParts(await vendorInput({ parts: { telegraf: true } }, { telegraf: { enabled: false } }));
    expect(parts.map((p) => p.name)).toContain('telegraf');
  });

  it('joins the controllers in address order, and binds to a template without an instance address', async () => {
    const { parts } = renderVendorDataParts(await vendorInput({ instance: { id: 'i-0123456789abcdef0', name: 'web-1', ips: [] } }));
    const consul = parts.find((p) => p.name === 'consul')?.content ?? '';
    expect(consul).toContain('"retry_join": [\n    "10.0.0.2",\n    "10.0.0.3",\n    "10.0.0.10"\n  ]');
    expect(consul).toContain(`"bind_addr": "${CONSUL_BIND_TEMPLATE}"`);
    const telegraf = parts.find((p) => p.name === 'telegraf')?.content ?? '';
    // One output per InfluxDB store, in address order: each store gets every point.
    expect(telegraf.match(/urls = \[.*\]/g)).toEqual(['urls = ["http://10.0.0.2:8086"]', 'urls = ["http://10.0.0.10:8086"]']);
  });

  it("writes to an operator's InfluxDB instead when telegraf.influxdb_url is set, and lets Telegraf create its database", async () => {
    const input = await vendorInput({}, { ...FULL_SETTINGS, telegraf: { influxdb_url: 'https://metrics.lab:8086', database: 'lab' } });
    const telegraf = renderVendorDataParts(input).parts.find((p) => p.name === 'telegraf')?.content ?? '';
    expect(telegraf.match(/urls = \[.*\]/g)).toEqual(['urls = ["https://metrics.lab:8086"]']);
    expect(telegraf).toContain('database = "lab"');
    expect(telegraf).not.toContain('skip_database_creation');
  });

  it('puts an empty token into the Vault part when none was minted, and the part says so', async () => {
    const { parts } = renderVendorDataParts(await vendorInput({ vaultWrappedSecretId: undefined }));
    expect(parts.find((p) => p.name === 'vault')?.content).toContain("\nVAULT_WRAPPED_SECRET_ID=''\n");
  });

  it('tells the service when to mint a secret_id', async () => {
    const on = (await vendorInput()).settings;
    const off = (await vendorInput({}, {})).settings;
    expect([wantsVaultPart(on), wantsVaultPart(on, { vault: false }), wantsVaultPart(off), wantsVaultPart(off, { vault: true })]).toEqual([
      true,
      false,
      false,
      false,
    ]);
  });
});

describe.skipIf(NO_TOMLLIB !== undefined)(`config encodings${NO_TOMLLIB === undefined ? '' : ` (skipped: ${NO_TOMLLIB})`}`, () => {
  it("hostile names survive Telegraf's TOML (read by Python's tomllib)", async () => {
    const name = `${HOSTILE.join('|')}\u007f\u0001\ud800`;
    const { settings } = await vendorInput();
    const toml = renderTelegrafConfig({ id: 'i-0123456789abcdef0', name, ips: [] }, settings, ['http://10.0.0.2:8086']);
    const config = readToml(toml) as {
      global_tags: Record<string, string>;
      outputs: { influxdb: { urls: string[]; database: string }[] };
    };
    // A lone surrogate cannot be in TOML at all: it becomes U+FFFD; everything else is exact.
    expect(config.global_tags).toEqual({ instance_id: 'i-0123456789abcdef0', instance_name: name.replace('\ud800', '\ufffd') });
    expect(config.outputs.influxdb).toEqual([{ urls: ['http://10.0.0.2:8086'], database: 'mammatus', skip_database_creation: true }]);
  });
});

describe('shellQuote', () => {
  it.each(HOSTILE)('keeps %j literal in sh', (value) => {
    const out = execFileSync('/bin/sh', ['-c', `V=${shellQuote(value)}; printf '%s' "$V"`]);
    expect(out.toString('utf8')).toBe(value);
  });

  it('refuses a NUL byte', () => {
    expect(() => shellQuote('a\0b')).toThrow(VendorDataTemplateError);
  });
});

describe('fillTemplate', () => {
  const lib = 'helper() { :; }\n';
  it('fills assignments, inlines lib.sh and leaves comments alone', () => {
    const out = fillTemplate('t.sh', '#!/bin/sh\n# fills @@X@@\n. ./lib.sh\nA=@@X@@\n', lib, { X: "it's" });
    expect(out).toBe("#!/bin/sh\n# fills @@X@@\nhelper() { :; }\nA='it'\\''s'\n");
  });

  it.each([
    ['a placeholder inside a string', 'A="@@X@@"\n', { X: '' }, 't.sh:1: a placeholder must stand alone as a value (VAR=@@NAME@@)'],
    ['a placeholder as a command', 'echo @@X@@\n', { X: '' }, 't.sh:1: a placeholder must stand alone'],
    ['a placeholder without a value', 'A=@@X@@\n', {}, 't.sh:1: no value for @@X@@'],
    ['a value without a placeholder', 'A=1\n', { X: '' }, 't.sh: has no placeholder for @@X@@'],
  ])('refuses %s', (_what, template, values, message) => {
    expect(() => fillTemplate('t.sh', template, lib, values)).toThrow(message);
  });
});

describe('loadVendorDataTemplates', () => {
  it('finds the repository copy by walking up from the module', async () => {
    expect(await findTemplateDir({ systemDir: '/nonexistent/mammatus' })).toBe(TEMPLATE_DIR);
    const loaded = await loadVendorDataTemplates(undefined, { systemDir: '/nonexistent/mammatus' });
    expect(loaded.consul).toBe(readFileSync(join(TEMPLATE_DIR, 'consul.sh'), 'utf8'));
  });

  it('prefers the installed directory when it exists', async () => {
    const system = tempDir();
    cpSync(TEMPLATE_DIR, system, { recursive: true });
    writeFileSync(
      join(system, 'telegraf.sh'),
      readFileSync(join(TEMPLATE_DIR, 'telegraf.sh'), 'utf8').replace('Telegraf sends', 'TELEGRAF SENDS'),
    );
    expect((await loadVendorDataTemplates(undefined, { systemDir: system })).telegraf).toContain('TELEGRAF SENDS');
  });

  it('names what is missing or wrong', async () => {
    const dir = tempDir();
    await expect(loadVendorDataTemplates(dir)).rejects.toThrow(`vendor-data template ${join(dir, 'lib.sh')} cannot be read`);
    await expect(findTemplateDir({ systemDir: join(dir, 'none'), from: dir })).rejects.toThrow(
      /vendor-data templates not found; looked in .*none/,
    );
    cpSync(TEMPLATE_DIR, dir, { recursive: true });
    writeFileSync(
      join(dir, 'vault.sh'),
      readFileSync(join(TEMPLATE_DIR, 'vault.sh'), 'utf8').replace('VAULT_ROLE_ID=@@VAULT_ROLE_ID@@', 'VAULT_ROLE_ID="@@VAULT_ROLE_ID@@"'),
    );
    await expect(loadVendorDataTemplates(dir)).rejects.toThrow(/vault\.sh:\d+: a placeholder must stand alone/);
    writeFileSync(
      join(dir, 'vault.sh'),
      readFileSync(join(TEMPLATE_DIR, 'vault.sh'), 'utf8').replace('VAULT_ROLE_ID=@@VAULT_ROLE_ID@@\n', ''),
    );
    await expect(loadVendorDataTemplates(dir)).rejects.toThrow('has no placeholder for @@VAULT_ROLE_ID@@');
  });

  it('reads CRLF templates as LF', async () => {
    const dir = tempDir();
    cpSync(TEMPLATE_DIR, dir, { recursive: true });
    writeFileSync(join(dir, 'consul.sh'), readFileSync(join(TEMPLATE_DIR, 'consul.sh'), 'utf8').replace(/\n/g, '\r\n'));
    expect((await loadVendorDataTemplates(dir)).consul).not.toContain('\r');
  });
});

describe.skipIf(!hasCloudInit)(`cloud-init's own parser${hasCloudInit ? '' : ` (skipped: ${NO_CLOUD_INIT})`}`, () => {
  it('splits the document into the shell parts, with their file names and exact payloads', async () => {
    const input = await vendorInput();
    const cloudDir = tempDir();
    const found = cloudInitParts(buildVendorData(input), cloudDir);
    const { parts } = renderVendorDataParts(input);
    expect(found.map((p) => [p.type, p.filename])).toEqual(parts.map((p) => ['text/x-shellscript', p.filename]));
    for (const [i, p] of parts.entries()) {
      expect(found[i]?.payload).toBe(p.content);
      // What the shell-script handler writes to /var/lib/cloud/instance/scripts/vendor/ is the same.
      const written = found[i]?.written ?? '';
      expect(written).toBe(join(cloudDir, 'instance', 'scripts', 'vendor', p.filename));
      expect(readFileSync(written, 'utf8')).toBe(p.content);
      expect(statSync(written).mode & 0o777).toBe(0o700);
    }
  });

  it('gets hostile and non-ASCII values through unchanged (such parts travel base64)', async () => {
    const name = HOSTILE.join('|');
    const input = await vendorInput({ instance: { id: 'i-0123456789abcdef0', name, ips: ['10.0.0.21'] } });
    const doc = buildVendorData(input);
    expect(doc).toContain('Content-Transfer-Encoding: base64');
    const found = cloudInitParts(doc);
    expect(found.map((p) => p.payload)).toEqual(renderVendorDataParts(input).parts.map((p) => p.content));
  });

  it('reads the CA parts: a cloud-config with ca_certs that passes `cloud-init schema`, then the script', async () => {
    const input = await vendorInput({ ca: CA });
    const found = cloudInitParts(buildVendorData(input));
    expect(found.map((p) => [p.type, p.filename])).toEqual([
      ['text/cloud-config', 'mammatus-ca.cfg'],
      ['text/x-shellscript', 'mammatus-ca.sh'],
      ...renderVendorDataParts(input).parts.map((p) => ['text/x-shellscript', p.filename]),
    ]);
    const cfg = join(tempDir(), 'ca.cfg');
    writeFileSync(cfg, found[0].payload);
    expect(execFileSync('cloud-init', ['schema', '-c', cfg], { encoding: 'utf8' })).toContain('Valid cloud-config');
    const parsed = parse(found[0].payload) as { ca_certs: { trusted: string[] } };
    expect(parsed.ca_certs.trusted).toEqual([CA.rootPem]);
  });

  it('finds nothing to run in an empty document', () => {
    // (cloud-init's stages skip empty vendor-data before this; the parser alone yields one empty part.)
    expect(cloudInitParts('').filter((p) => p.payload !== '' || p.written !== null)).toEqual([]);
  });
});
