/** The iPXE script of a planned host: golden per firmware and state, and the boot URL it accepts. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isBootUrl, renderIpxeScript } from '../../../src/metadata/ipxe-script.js';

const GOLDEN = join(import.meta.dirname, '__golden__', 'ipxe');

describe('renderIpxeScript', () => {
  it.each([
    ['live-efi64-boot-url', { name: 'metal-1', arch: 'efi64', installed: false, bootUrl: 'http://10.88.0.1:8777' }],
    ['live-bios-variable', { name: 'metal-2', arch: 'bios', installed: false }],
    ['installed-bios', { name: 'metal-2', arch: 'bios', installed: true, bootUrl: 'http://10.88.0.1:8777' }],
    ['installed-efi64', { name: 'metal-1', arch: 'efi64', installed: true }],
    ['installed-arm64', { name: 'pi-1', arch: 'arm64', installed: true }],
  ] as const)('%s (golden)', async (file, input) => {
    await expect(renderIpxeScript(input)).toMatchFileSnapshot(join(GOLDEN, `${file}.ipxe`));
  });

  it('boots the live system with the NoCloud seed, from the stub-set variable when no URL is given', () => {
    const script = renderIpxeScript({ name: 'm', arch: 'efi64', installed: false });
    expect(script.split('\n')).toEqual(
      expect.arrayContaining([
        'kernel ${boot-url}/live/amd64/vmlinuz initrd=initrd.img boot=live fetch=${boot-url}/live/amd64/filesystem.squashfs ip=dhcp console=tty0 console=ttyS0 ds=nocloud;s=http://169.254.169.254/nocloud/',
        'initrd ${boot-url}/live/amd64/initrd.img',
        'boot',
      ]),
    );
    expect(script.startsWith('#!ipxe\n')).toBe(true);
  });

  it('names the arm64 live build for a Raspberry Pi (it runs no iPXE, so this is never asked in practice)', () => {
    expect(renderIpxeScript({ name: 'pi-1', arch: 'rpi', installed: false })).toContain('${boot-url}/live/arm64/vmlinuz');
  });

  it('refuses a boot URL that is not http://<IPv4>:<port>', () => {
    expect(() => renderIpxeScript({ name: 'm', arch: 'bios', installed: false, bootUrl: 'http://x y' })).toThrow(/boot URL/);
  });
});

describe('isBootUrl', () => {
  it.each(['http://10.88.0.1:8777', 'http://192.168.1.254:80'])('accepts %s', (u) => expect(isBootUrl(u)).toBe(true));
  it.each([
    'https://10.88.0.1:8777',
    'http://10.88.0.1',
    'http://10.88.0.1:8777/',
    'http://gw:8777',
    'http://10.88.0.1:0',
    'http://10.88.0.1:65536',
    'http://10.88.0.1:8777 initrd=evil',
    'http://10.88.0.1:8777\nshell',
    'http://user@10.88.0.1:8777',
    'http://999.88.0.1:8777',
  ])('refuses %j', (u) => expect(isBootUrl(u)).toBe(false));
});
