/**
 * What the local cluster adds when it runs as root (scripts/local-cluster.ts): the instance image
 * for the compute node's LXD, the cluster's metadata secret, and per-node config drop-ins that move
 * the controller's NATS and metadata service onto the LAN and point the gateway's metadata proxy,
 * its registry feed, the compute role and the storage role at them. The drop-ins live under `.cluster/<node>/` next to
 * a link to `examples/cluster/<role>.yaml`, so those files stay what a run without root uses.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { CN_LAN, LAN } from './local-lan.js';

/** Rendered files, the secret and the compute role's preseed; deleted when the cluster stops. */
export const RUN_DIR = '/run/mammatus-local-cluster';
/**
 * The compute node's LXD (`LXD_DIR` is `<this>/lxd`): on disk, not in /run, which is a small tmpfs
 * on most machines, while each container's rootfs is a few hundred MB. Deleted when the cluster stops.
 */
export const LXD_BASE = '/var/lib/mammatus-local-cluster';
/** The controller's ports, as examples/cluster/controller.yaml has them. */
export const CONTROLLER_PORTS = { nats: 4232, metadata: 8775, prometheus: 9190 } as const;

const BUILD_IMAGE = fileURLToPath(new URL('../build-image.sh', import.meta.url));

/** The newest image tarball scripts/build-image.sh cached (whatever inputs it was built from). */
export function cachedImage(): string | undefined {
  const dir = process.env.MAMMATUS_IMAGE_CACHE || '/var/cache/mammatus-images';
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^mammatus-.*\.tar\.gz$/.test(n) && existsSync(path.join(dir, `${n}.sha256`)));
  } catch {
    return undefined;
  }
  const newest = names.map((n) => path.join(dir, n)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  return newest;
}

/**
 * The image to import: scripts/build-image.sh's (a cache hit is instant, a build takes minutes; its
 * progress goes to our stderr), or with `noImage` only one already cached. Undefined when there is
 * none; a failed build is reported and the cluster runs on without an image.
 */
export async function instanceImage(noImage: boolean): Promise<string | undefined> {
  if (noImage) {
    const cached = cachedImage();
    console.log(
      cached ? `Instance image (cached): ${cached}` : '--no-image and no image cached: the compute node gets LXD without an image.',
    );
    return cached;
  }
  console.log('Instance image: scripts/build-image.sh (debootstrap; a few minutes the first time, cached after) ...');
  const started = Date.now();
  const child = spawn(BUILD_IMAGE, [], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', () => resolve(-1));
    child.once('close', (c) => resolve(c));
  });
  const took = Math.round((Date.now() - started) / 1000);
  if (code === 0 && out.trim()) {
    console.log(`Instance image ready in ${took >= 60 ? `${Math.floor(took / 60)} min ${took % 60} s` : `${took} s`}: ${out.trim()}`);
    return out.trim();
  }
  console.log(`The image build failed (exit ${code}): the compute node gets LXD without an image (--no-image skips the build).`);
  return undefined;
}

/** The alias an image is imported as: `debian-bookworm` for mammatus-debian-bookworm-amd64-KEY.tar.gz. */
export function imageAlias(tarball: string): string {
  return /^mammatus-([a-z]+-[a-z]+)-/.exec(path.basename(tarball))?.[1] ?? 'mammatus-image';
}

/** Writes a fresh random cluster secret (32 bytes, hex, mode 0600); returns its path. */
export function writeMetadataSecret(): string {
  mkdirSync(RUN_DIR, { recursive: true, mode: 0o755 });
  const file = path.join(RUN_DIR, 'metadata.secret');
  writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  return file;
}

/** What the drop-ins need to know. */
export interface RootSettings {
  readonly secretFile: string;
  /** The compute node's LXD socket; without it the compute role stays unconfigured. */
  readonly lxdSocket?: string;
  /** Storage-1 runs its own tgtd (scripts/lib/local-storage.ts); without it the storage role serves nothing. */
  readonly storage?: boolean;
}

/**
 * Storage-1's settings: tgt, not auto (LIO is the kernel's, shared with the host; tgtd is storage-1's
 * own process). The portal is its Serf address (st-lan); `path` is the default, which its mount
 * namespace binds to .cluster/storage-1/volumes (scripts/lib/local-storage.ts).
 */
const STORAGE_SETTINGS = { backend: 'tgt' } as const;

/**
 * Storage-1's drop-in with its registry, written once its agent is up: a storage agent starts its
 * role before it publishes its trust tag, the role waits for its first NATS connection, and the
 * controller's firewall lets a member's address in only once its trust tag verifies. Given the
 * registry at start, storage-1's agent would wait for a NATS that waits for it.
 */
export function storageRegistry(): object {
  return { roles: { storage: { ...STORAGE_SETTINGS, registry: { nats: [`nats://${LAN.host}:${CONTROLLER_PORTS.nats}`] } } } };
}

/** Each role's drop-in (agent config keys) for a run as root. */
export function rootDropIns(s: RootSettings): Record<string, object> {
  const nats = `nats://${LAN.host}:${CONTROLLER_PORTS.nats}`;
  return {
    // The gateway lives in its own namespace: the controller's loopback is out of its reach.
    controller: {
      // As root the controller's own firewall is on (NATS from admitted members, the metadata
      // service from the gateway); scripts/local-cluster.ts takes its chain away at the end.
      roles: {
        controller: {
          nats: { listen: `${LAN.host}:${CONTROLLER_PORTS.nats}` },
          firewall: { enabled: true, metadata_port: CONTROLLER_PORTS.metadata },
        },
      },
      metadata: { listen: `${LAN.host}:${CONTROLLER_PORTS.metadata}`, proxy_secret_file: s.secretFile },
    },
    gateway: {
      roles: {
        gateway: {
          metadata: { secret_file: s.secretFile, upstreams: [`http://${LAN.host}:${CONTROLLER_PORTS.metadata}`] },
          registry: { nats: [nats] },
        },
      },
    },
    // The registry comes later (storageRegistry): see there.
    ...(s.storage ? { storage: { roles: { storage: STORAGE_SETTINGS } } } : {}),
    ...(s.lxdSocket
      ? {
          // The agent runs in the root namespace (LXD's socket is a unix socket); the parent is only
          // looked up by LXD, inside the compute node's namespace.
          compute: {
            roles: {
              compute: {
                parent: CN_LAN,
                lxd: { socket: s.lxdSocket },
                registry: { nats: [nats] },
                paths: { preseed: path.join(RUN_DIR, 'compute/preseed.yaml') },
              },
            },
          },
        }
      : {}),
  };
}

/**
 * The config path of a node: `example` itself, or with a drop-in `dir/agent.yaml` (a link to
 * `example`) and `dir/agent.d/90-local-cluster.yaml`, read in that order as on a real node.
 */
export function nodeConfig(dir: string, example: string, dropIn: object | undefined): string {
  if (!dropIn) return example;
  mkdirSync(path.join(dir, 'agent.d'), { recursive: true });
  const main = path.join(dir, 'agent.yaml');
  symlinkSync(example, main);
  writeDropIn(dir, dropIn);
  return main;
}

/** (Re)writes the drop-in of the node in `dir`; a running agent reloads (`watch_config`). */
export function writeDropIn(dir: string, dropIn: object): void {
  const header = '# Written by scripts/local-cluster.ts for this run, over agent.yaml (examples/cluster).\n';
  // 0600 as a drop-in with a secret must be (the agent refuses it otherwise); this one names only files today.
  // Through a temp file and a rename: the agent reloading mid-write must not read half of it.
  const file = path.join(dir, 'agent.d', '90-local-cluster.yaml');
  writeFileSync(`${file}.tmp`, header + stringify(dropIn), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}
