/** The gateway's boot serving: the iPXE stub, the boot server's section, and the child's check of it. */
import { describe, expect, it } from 'vitest';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { parseBootSection } from '../../../roles/gateway/boot-server.js';
import { bootServerSection, renderBootServerConf, renderBootStub, stubUrl } from '../../../roles/gateway/render-boot.js';
import { parse } from 'yaml';

describe('the iPXE stub', () => {
  it('is an iPXE script that sets boot-url and chains the metadata service', () => {
    const stub = renderBootStub(parseGatewayConfig({}));
    expect(stub.startsWith('#!ipxe\n')).toBe(true);
    expect(stub).toContain('\nset boot-url http://10.88.0.1:8777\n');
    expect(stub).toContain('\nchain http://169.254.169.254/mammatus/ipxe?boot_url=${boot-url} || goto unknown\n:unknown\n');
    expect(stubUrl(parseGatewayConfig({ lan: { address: '10.5.0.1/16' }, boot: { port: 9000 } }))).toBe('http://10.5.0.1:9000/boot.ipxe');
  });

  it('exits to the next boot device (local) or waits and asks again (none), never a shell', () => {
    const local = renderBootStub(parseGatewayConfig({}));
    expect(local.split(':unknown\n')[1]).toMatch(/^echo [^\n]*\nexit\n$/);
    const none = renderBootStub(parseGatewayConfig({ boot: { unknown: 'none' } }));
    expect(none.split(':unknown\n')[1]).toMatch(/^echo [^\n]*\nsleep 30 \|\| goto start\ngoto start\n$/);
    for (const s of [local, none]) expect(s).not.toMatch(/^shell/m);
  });
});

describe('the boot server section', () => {
  it('serves the stub, the image and the apt repository on the LAN address', () => {
    const cfg = parseGatewayConfig({ boot: { image_dir: '/srv/img', apt_dir: '/srv/apt' } });
    const section = bootServerSection(cfg);
    expect(section).toEqual({
      host: '10.88.0.1',
      port: 8777,
      files: { '/boot.ipxe': '/etc/mammatus/gateway/boot.ipxe' },
      dirs: { '/live/amd64/': '/srv/img', '/apt/': '/srv/apt' },
    });
    expect(parseBootSection((parse(renderBootServerConf(cfg)) as { boot: unknown }).boot)).toEqual(section);
  });

  it('is checked by the child: bad shapes are refused with a clear error', () => {
    const good = bootServerSection(parseGatewayConfig({}));
    expect(() => parseBootSection(undefined)).toThrow(/host/);
    expect(() => parseBootSection({ ...good, port: 0 })).toThrow(/port/);
    expect(() => parseBootSection({ ...good, dirs: { '/apt': '/srv/apt' } })).toThrow(/dirs/);
    expect(() => parseBootSection({ ...good, dirs: { '/apt/': 'srv/apt' } })).toThrow(/dirs/);
    expect(() => parseBootSection({ ...good, files: { '/x/': '/a' } })).toThrow(/files/);
    expect(() => parseBootSection({ ...good, files: { '/x': '/a/../etc/shadow' } })).toThrow(/files/);
  });
});
