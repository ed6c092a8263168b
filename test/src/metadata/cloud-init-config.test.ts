/**
 * cloud-init/cloud.cfg.d/90-mammatus.cfg, checked by cloud-init 22.4 itself: its schema, ds-identify
 * against a fake root (NoCloud is chosen; without the file cloud-init would be disabled), and the
 * NoCloudNet datasource reading a seed with our vendor-data from a loopback server.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse } from 'yaml';
import { buildVendorData } from '../../../src/metadata/vendor-data.js';
import { vendorInput } from './vendor-fixtures.js';

const CFG_FILE = join(import.meta.dirname, '..', '..', '..', 'cloud-init', 'cloud.cfg.d', '90-mammatus.cfg');
const PYTHON = '/usr/bin/python3';
const DS_IDENTIFY = '/usr/lib/cloud-init/ds-identify';
const hasCloudInit =
  spawnSync(PYTHON, ['-c', 'import cloudinit'], { stdio: 'ignore' }).status === 0 &&
  spawnSync('cloud-init', ['--version'], { stdio: 'ignore' }).status === 0;
const NO_CLOUD_INIT = 'cloud-init is not installed, or /usr/bin/python3 cannot import cloudinit (apt-get install cloud-init)';
const hasDsIdentify = hasCloudInit && existsSync(DS_IDENTIFY) && existsSync('/etc/cloud/cloud.cfg');
const run = promisify(execFile);

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mammatus-cfg-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('90-mammatus.cfg', () => {
  const text = readFileSync(CFG_FILE, 'utf8');

  it('selects NoCloud with the metadata service as network seed', () => {
    expect(parse(text)).toEqual({
      datasource_list: ['NoCloud', 'None'],
      datasource: { NoCloud: { seedfrom: 'http://169.254.169.254/nocloud/', fs_label: null } },
    });
  });

  it('keeps datasource_list on one line, for ds-identify', () => {
    expect(text).toMatch(/^datasource_list: \[ NoCloud, None \]$/m);
  });
});

describe.skipIf(!hasCloudInit)(`90-mammatus.cfg and cloud-init 22.4${hasCloudInit ? '' : ` (skipped: ${NO_CLOUD_INIT})`}`, () => {
  it('passes `cloud-init schema -c` (given the #cloud-config header a system file does without)', () => {
    const file = join(tempDir(), 'cfg');
    writeFileSync(file, `#cloud-config\n${readFileSync(CFG_FILE, 'utf8')}`);
    expect(execFileSync('cloud-init', ['schema', '-c', file], { encoding: 'utf8' })).toContain('Valid cloud-config');
  });

  it('makes the NoCloudNet datasource read our vendor-data from the seed', async () => {
    const vendorData = buildVendorData(await vendorInput());
    const requests: string[] = [];
    const bodies: Record<string, string> = {
      '/nocloud/meta-data': 'instance-id: i-0123456789abcdef0\nlocal-hostname: web-1\n',
      '/nocloud/user-data': '',
      '/nocloud/vendor-data': vendorData,
    };
    const server = createServer((req, res) => {
      requests.push(req.url ?? '');
      const body = bodies[req.url ?? ''];
      res.writeHead(body === undefined ? 404 : 200).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const seed = `http://127.0.0.1:${(server.address() as AddressInfo).port}/nocloud/`;
    // The system config is our file with only the seed URL pointed at the loopback server.
    const cfg = readFileSync(CFG_FILE, 'utf8').replace('http://169.254.169.254/nocloud/', seed);
    const py = [
      'import json, sys, tempfile, yaml',
      'from cloudinit import distros, helpers',
      'from cloudinit.sources import DataSourceNoCloud as N',
      'cfg = yaml.safe_load(sys.stdin.read())',
      't = tempfile.mkdtemp()',
      'p = helpers.Paths({"cloud_dir": t, "run_dir": t})',
      'd = N.DataSourceNoCloudNet(cfg, distros.fetch("debian")("debian", {}, p), p)',
      'ok = d.get_data()',
      'print(json.dumps({"ok": ok, "id": d.get_instance_id(), "dsmode": d.dsmode, "vendor": d.get_vendordata_raw().decode()}))',
    ].join('\n');
    const child = run(PYTHON, ['-c', py], { encoding: 'utf8' });
    child.child.stdin?.end(cfg);
    const out = JSON.parse((await child).stdout) as { ok: boolean; id: string; dsmode: string; vendor: string };
    expect(out).toEqual({ ok: true, id: 'i-0123456789abcdef0', dsmode: 'net', vendor: vendorData });
    expect(requests).toEqual(expect.arrayContaining(['/nocloud/meta-data', '/nocloud/user-data', '/nocloud/vendor-data']));
  });
});

describe.skipIf(!hasDsIdentify)(`ds-identify${hasDsIdentify ? '' : ` (skipped: ${NO_CLOUD_INIT})`}`, () => {
  /** Runs ds-identify against a fake root; returns the datasource_list it wrote (or its verdict). */
  function dsIdentify(opts: { withCfg: boolean; cmdline?: string }): { cfg: string; log: string } {
    const root = tempDir();
    mkdirSync(join(root, 'etc', 'cloud', 'cloud.cfg.d'), { recursive: true });
    mkdirSync(join(root, 'proc', '1'), { recursive: true });
    copyFileSync('/etc/cloud/cloud.cfg', join(root, 'etc', 'cloud', 'cloud.cfg'));
    if (opts.withCfg) copyFileSync(CFG_FILE, join(root, 'etc', 'cloud', 'cloud.cfg.d', '90-mammatus.cfg'));
    writeFileSync(join(root, 'proc', '1', 'environ'), '');
    writeFileSync(join(root, 'proc', 'cmdline'), `${opts.cmdline ?? 'BOOT_IMAGE=/vmlinuz root=/dev/sda1'}\n`);
    const proc = join(root, 'proc');
    spawnSync(DS_IDENTIFY, ['--force'], {
      env: {
        PATH: process.env.PATH,
        PATH_ROOT: root,
        PATH_PROC_1_ENVIRON: join(proc, '1', 'environ'),
        PATH_PROC_CMDLINE: join(proc, 'cmdline'),
        PATH_PROC_1_CMDLINE: join(proc, 'cmdline'),
        DEBUG_LEVEL: '2',
      },
      stdio: 'ignore',
    });
    const run = join(root, 'run', 'cloud-init');
    return { cfg: readFileSync(join(run, 'cloud.cfg'), 'utf8'), log: readFileSync(join(run, 'ds-identify.log'), 'utf8') };
  }

  it('picks NoCloud with the file, without any detection', () => {
    const { cfg, log } = dsIdentify({ withCfg: true });
    expect(cfg).toContain('datasource_list: [ NoCloud, None ]');
    expect(log).toContain('single entry in datasource_list (NoCloud None) use that');
  });

  it('would disable cloud-init without it', () => {
    const { log } = dsIdentify({ withCfg: false });
    expect(log).toContain('Disabled cloud-init');
  });

  it('picks NoCloud from the PXE kernel command line in the README, without the file', () => {
    const { cfg } = dsIdentify({ withCfg: false, cmdline: 'BOOT_IMAGE=/vmlinuz ds=nocloud-net;s=http://169.254.169.254/nocloud/' });
    expect(cfg).toMatch(/datasource_list: \[ NoCloud, None \]/);
  });
});
