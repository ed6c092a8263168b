// The QEMU command line the PXE tests boot with: TCG, no default devices, the NIC first in the boot
// order (BIOS: its iPXE ROM; UEFI: no ROM, so OVMF's own PXE), a disk second, qemu exiting on reboot
// unless asked otherwise.
import { describe, expect, it } from 'vitest';
import { OVMF_CODE, qemuArgs } from '../../scripts/lib/qemu-bed.js';

const MAC = '52:54:00:00:00:01';
const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

describe('qemuArgs', () => {
  it('boots a BIOS machine from the NIC with its iPXE ROM, under TCG, serial to a file', () => {
    const args = qemuArgs({ name: 'vm1', mac: MAC, firmware: 'bios' }, 'tap1', '/tmp/s.log');
    expect(after(args, '-accel')).toEqual(['tcg']);
    expect(args).toContain('-nodefaults');
    expect(args).toContain('-no-reboot');
    expect(after(args, '-m')).toEqual(['1024']);
    expect(after(args, '-serial')).toEqual(['file:/tmp/s.log']);
    expect(after(args, '-netdev')).toEqual(['tap,id=n0,ifname=tap1,script=no,downscript=no']);
    expect(after(args, '-device')).toContain(`virtio-net-pci,netdev=n0,mac=${MAC},bootindex=1`);
    expect(args.join(' ')).not.toContain('pflash');
  });

  it('gives a UEFI machine OVMF with its own variables and a NIC without ROM', () => {
    const args = qemuArgs({ name: 'vm2', mac: MAC, firmware: 'efi64' }, 'tap2', '/tmp/s.log', '/tmp/vars.fd');
    expect(after(args, '-drive')).toEqual([
      `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      'if=pflash,format=raw,unit=1,file=/tmp/vars.fd',
    ]);
    expect(after(args, '-device')).toContain(`virtio-net-pci,netdev=n0,mac=${MAC},bootindex=1,romfile=`);
    expect(() => qemuArgs({ name: 'vm2', mac: MAC, firmware: 'efi64' }, 'tap2', '/tmp/s.log')).toThrow(/OVMF variables/);
  });

  it('adds a disk after the network in the boot order, and lets the guest reboot when asked', () => {
    const args = qemuArgs(
      { name: 'vm3', mac: MAC, firmware: 'bios', disk: '/tmp/d.qcow2', reboot: true, memoryMb: 2048 },
      'tap3',
      '/tmp/s.log',
    );
    expect(after(args, '-drive')).toEqual(['if=none,id=d0,format=qcow2,file=/tmp/d.qcow2']);
    expect(after(args, '-device')).toContain('virtio-blk-pci,drive=d0,bootindex=2');
    expect(args).not.toContain('-no-reboot');
    expect(after(args, '-m')).toEqual(['2048']);
  });
});
