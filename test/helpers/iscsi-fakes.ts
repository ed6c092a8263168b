/**
 * Fakes of the compute node's volume side for unit tests: volume records, an in-memory LXD with the
 * three calls a volume pass makes, and open-iscsi as a recording runner that logs in and out.
 */
import type { VolumeRecord } from '../../core/volume-record.js';
import type { LxdDevice, LxdInstance, LxdInstancePut } from '../../src/lxd/types.js';
import type { VolumePassDeps } from '../../roles/compute/volume-attach.js';
import { commandFailed, recordingRun } from './recording-run.js';

export const T = '2026-12-01T00:00:00.000Z';
export const iqn = (v: string) => `iqn.2026-12.mammatus:volume.${v}`;
export const dev = (v: string) => `/dev/disk/by-path/ip-10.88.0.31:3260-iscsi-${iqn(v)}-lun-1`;

/** A volume attached to `instance` on cn1, served by st1. */
export function vol(name: string, instance = 'web1', path?: string, extra: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    name,
    size_bytes: 1 << 30,
    node: 'st1',
    backing: { kind: 'file', path: `/var/lib/mammatus/volumes/${name}.img` },
    state: 'available',
    attached: { instance, node: 'cn1', initiator: 'iqn.1993-08.org.debian:01:ab', ...(path ? { path } : {}) },
    chap: { user: `mammatus-${name}`, secret: 'Zq8Rr2Lm5Tt1Kp9W' },
    lun: 1,
    observed: { state: 'serving', lun: 1 },
    created_at: T,
    updated_at: T,
    ...extra,
  };
}

/** An in-memory LXD with the three calls a pass makes; every PUT is recorded. */
export function memoryLxd(initial: Record<string, Record<string, LxdDevice>>, opts: { failPut?: string; unmanaged?: string[] } = {}) {
  const instances = new Map<string, LxdInstance>();
  for (const [name, devices] of Object.entries(initial)) {
    const config: Record<string, string> = opts.unmanaged?.includes(name) ? {} : { 'user.mammatus.instance-id': `i-${name}` };
    instances.set(name, { name, type: 'container', status: 'Running', status_code: 103, config, devices, profiles: ['default'] });
  }
  const puts: { name: string; devices: string[]; etag?: string }[] = [];
  const lxd: VolumePassDeps['lxd'] = {
    listInstances: async () => [...instances.values()],
    getInstance: async (name) => ({ value: instances.get(name)!, etag: `e-${name}` }),
    updateInstance: async (name: string, put: LxdInstancePut, o: { etag?: string } = {}) => {
      if (opts.failPut === name) throw new Error('LXD: device busy');
      puts.push({ name, devices: Object.keys(put.devices).sort(), ...(o.etag ? { etag: o.etag } : {}) });
      instances.set(name, { ...instances.get(name)!, devices: put.devices });
    },
  };
  return { lxd, instances, puts };
}

/** open-iscsi with the given sessions and records (`<iqn> <ip>`). */
export function iscsi(sessions: string[] = [], nodes: string[] = [], failLogin?: string) {
  return recordingRun((argv) => {
    const a = argv.slice(1).join(' ');
    if (a === '-m session')
      return sessions.length
        ? {
            stdout: sessions.map((s, i) => `tcp: [${i + 1}] ${s.split(' ')[1]}:3260,1 ${s.split(' ')[0]} (non-flash)`).join('\n'),
            stderr: '',
            exitCode: 0,
          }
        : commandFailed(argv, 21);
    if (a === '-m node')
      return nodes.length
        ? { stdout: nodes.map((n) => `${n.split(' ')[1]}:3260,1 ${n.split(' ')[0]}`).join('\n'), stderr: '', exitCode: 0 }
        : commandFailed(argv, 21);
    if (failLogin && a.includes('--login') && a.includes(failLogin)) return commandFailed(argv, 24);
    if (a.includes('--login')) {
      // The login made a session, and the record file it read is a record `-m node` lists.
      const key = `${argv[4]} ${argv[6].replace(':3260', '')}`;
      sessions.push(key);
      if (!nodes.includes(key)) nodes.push(key);
    }
    // A logout ends the session; a delete forgets the record.
    const drop = (list: string[], key: string) => list.includes(key) && list.splice(list.indexOf(key), 1);
    if (a.includes('--logout')) drop(sessions, `${argv[4]} ${argv[6].replace(':3260', '')}`);
    if (a.includes('-o delete')) drop(nodes, `${argv[6]} ${argv[8].replace(':3260', '')}`);
    return undefined;
  });
}
