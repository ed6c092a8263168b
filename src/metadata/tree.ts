/**
 * The metadata trees an instance reads, built purely from its registry record: the EC2-compatible
 * tree (`/<version>/meta-data/…`, `user-data`, `dynamic/…`), the NoCloud seed (`/nocloud/…`) and the
 * OpenStack tree (`/openstack/<version>/…`). Format rules that cloud-init relies on (see
 * docs/metadata.md): scalar leaves carry no trailing newline, directories list children with a
 * trailing `/`, `public-keys/` lists `0=<name>`.
 */
import { stringify } from 'yaml';
import { userDataOf, type InstanceRecord } from '../../core/instance-record.js';

/** A leaf: its bytes and content type. */
export interface Leaf {
  readonly kind: 'leaf';
  readonly body: string | Buffer;
  readonly type: string;
}

/** A directory: children in listing order; `listing` overrides how it lists them (public-keys). */
export interface Dir {
  readonly kind: 'dir';
  readonly children: ReadonlyMap<string, Node>;
  readonly listing?: readonly string[];
}

/** A node of a metadata tree. */
export type Node = Leaf | Dir;

/** What every tree needs besides the record. */
export interface TreeContext {
  /** DNS domain of the cluster (`<name>.<domain>`). */
  readonly domain: string;
  /** Availability zone; the region is derived from it as cloud-init does (minus its last letter). */
  readonly availabilityZone: string;
  /** The caller's address as seen (used when the record has no IP yet). */
  readonly callerIp?: string;
}

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json';
const BYTES = 'application/octet-stream';

const text = (body: string): Leaf => ({ kind: 'leaf', body, type: TEXT });
const json = (value: unknown): Leaf => ({ kind: 'leaf', body: JSON.stringify(value), type: JSON_TYPE });
const dir = (entries: readonly (readonly [string, Node])[], listing?: readonly string[]): Dir => ({
  kind: 'dir',
  children: new Map(entries),
  ...(listing ? { listing } : {}),
});

/** The dated EC2 builds `GET /` lists; any date-shaped prefix is answered the same way. */
export const EC2_VERSIONS = [
  '1.0',
  '2007-01-19',
  '2007-03-01',
  '2007-08-29',
  '2007-10-10',
  '2007-12-15',
  '2008-02-01',
  '2008-09-01',
  '2009-04-04',
  '2011-01-01',
  '2011-05-01',
  '2012-01-12',
  '2014-02-25',
  '2014-11-05',
  '2015-10-20',
  '2016-04-19',
  '2016-06-30',
  '2016-09-02',
  '2018-03-28',
  '2018-08-17',
  '2018-09-24',
  '2019-10-01',
  '2020-10-27',
  '2021-01-03',
  '2021-03-23',
  'latest',
] as const;

/** The OpenStack versions `GET /openstack` lists (the ones cloud-init 22.4 knows, newest last). */
export const OPENSTACK_VERSIONS = [
  '2012-08-10',
  '2013-04-04',
  '2013-10-17',
  '2015-10-15',
  '2016-06-30',
  '2016-10-06',
  '2017-02-22',
  '2018-08-27',
  'latest',
] as const;

/** True for a first path segment the EC2 tree answers: `latest`, `1.0` or any date. */
export function isEc2Version(segment: string): boolean {
  return segment === 'latest' || segment === '1.0' || /^\d{4}-\d{2}-\d{2}$/.test(segment);
}

/** The region cloud-init derives from an availability zone off AWS: the zone minus its last character. */
export function regionOf(zone: string): string {
  return zone.length > 1 ? zone.slice(0, -1) : zone;
}

function primaryIp(r: InstanceRecord, ctx: TreeContext): string | undefined {
  return r.ips.find((ip) => !ip.includes(':')) ?? r.ips[0] ?? ctx.callerIp;
}

/** Key names for `public-keys/`: `key-0`, `key-1`… unless the key's comment is a usable name. */
export function keyNames(keys: readonly string[]): string[] {
  return keys.map((k, i) => {
    const comment = k.split(' ').slice(2).join(' ');
    return /^[A-Za-z0-9@._-]{1,64}$/.test(comment) ? comment : `key-${i}`;
  });
}

/** The EC2 instance identity document (`dynamic/instance-identity/document`). */
export function identityDocument(r: InstanceRecord, ctx: TreeContext): Record<string, unknown> {
  return {
    accountId: '000000000000',
    architecture: 'x86_64',
    availabilityZone: ctx.availabilityZone,
    billingProducts: null,
    devpayProductCodes: null,
    marketplaceProductCodes: null,
    imageId: 'ami-00000000',
    instanceId: r.id,
    instanceType: r.node ? 'lxd.container' : 'metal',
    kernelId: null,
    ramdiskId: null,
    pendingTime: r.created_at,
    privateIp: primaryIp(r, ctx) ?? null,
    region: regionOf(ctx.availabilityZone),
    version: '2017-09-30',
  };
}

/** The `/<version>/` subtree of the EC2 format for one instance. */
export function ec2Tree(r: InstanceRecord, ctx: TreeContext): Dir {
  const ip = primaryIp(r, ctx);
  const names = keyNames(r.ssh_keys);
  const publicKeys = dir(
    r.ssh_keys.map((key, i) => [String(i), dir([['openssh-key', text(key)]])] as const),
    names.map((name, i) => `${i}=${name}`),
  );
  const tags = Object.entries(r.tags);
  const metaData = dir([
    ['ami-id', text('ami-00000000')],
    ['ami-launch-index', text('0')],
    ['ami-manifest-path', text('(unknown)')],
    ['hostname', text(`${r.name}.${ctx.domain}`)],
    ['instance-action', text('none')],
    ['instance-id', text(r.id)],
    ['instance-life-cycle', text('on-demand')],
    ['instance-type', text(r.node ? 'lxd.container' : 'metal')],
    ...(ip ? ([['local-ipv4', text(ip)]] as const) : []),
    ['local-hostname', text(r.name)],
    ['mac', text(r.macs[0])],
    [
      'placement',
      dir([
        ['availability-zone', text(ctx.availabilityZone)],
        ['region', text(regionOf(ctx.availabilityZone))],
      ]),
    ],
    ...(r.ssh_keys.length ? ([['public-keys', publicKeys]] as const) : []),
    ['reservation-id', text(`r-${r.id.slice(2)}`)],
    ['security-groups', text('default')],
    [
      'services',
      dir([
        ['domain', text(ctx.domain)],
        ['partition', text('mammatus')],
      ]),
    ],
    ...(tags.length ? ([['tags', dir([['instance', dir(tags.map(([k, v]) => [k, text(v)] as const))]])]] as const) : []),
  ]);
  const dynamic = dir([['instance-identity', dir([['document', json(identityDocument(r, ctx))]])]]);
  const userData = userDataOf(r);
  return dir([
    ['dynamic', dynamic],
    ['meta-data', metaData],
    ...(userData.length ? ([['user-data', { kind: 'leaf', body: userData, type: BYTES }]] as const) : []),
  ]);
}

/** NoCloud's `meta-data` document (YAML). */
export function nocloudMetaData(r: InstanceRecord, ctx: TreeContext): string {
  return stringify(
    {
      'instance-id': r.id,
      'local-hostname': r.name,
      hostname: `${r.name}.${ctx.domain}`,
      'availability-zone': ctx.availabilityZone,
      ...(r.ssh_keys.length ? { 'public-keys': [...r.ssh_keys] } : {}),
    },
    { lineWidth: 0 },
  ); // no folding: one key, one line, as people expect to read it
}

/**
 * The `/nocloud/` tree; vendor-data is produced per request and passed in, and so is the user-data
 * of a planned host (host-seed.ts: it holds the host's join secret, read per request).
 */
export function nocloudTree(r: InstanceRecord, ctx: TreeContext, vendorData: string, userData: string | Buffer = userDataOf(r)): Dir {
  // user-data answers 200 even when empty: a 404 makes cloud-init's NoCloud datasource fail.
  return dir([
    ['meta-data', text(nocloudMetaData(r, ctx))],
    ['user-data', { kind: 'leaf', body: userData, type: BYTES }],
    ['vendor-data', { kind: 'leaf', body: vendorData, type: TEXT }],
  ]);
}

/** The `/openstack/<version>/` tree (cloud-init's OpenStack datasource, ≥ 23.2 when forced). */
export function openstackTree(r: InstanceRecord, ctx: TreeContext, vendorData: string): Dir {
  const names = keyNames(r.ssh_keys);
  const meta = {
    uuid: r.id,
    name: r.name,
    hostname: `${r.name}.${ctx.domain}`,
    launch_index: 0,
    availability_zone: ctx.availabilityZone,
    project_id: 'mammatus',
    public_keys: Object.fromEntries(r.ssh_keys.map((k, i) => [names[i], k])),
    keys: r.ssh_keys.map((k, i) => ({ name: names[i], type: 'ssh', data: k })),
    meta: { ...r.tags },
  };
  const userData = userDataOf(r);
  return dir([
    ['meta_data.json', json(meta)],
    ...(userData.length ? ([['user_data', { kind: 'leaf', body: userData, type: BYTES }]] as const) : []),
    ['vendor_data.json', json(vendorData ? { 'cloud-init': vendorData } : {})],
  ]);
}

/** Finds the node at `segments` (empty segments ignored, so `a/` and `a` are the same). */
export function walk(root: Node, segments: readonly string[]): Node | undefined {
  let node: Node | undefined = root;
  for (const s of segments) {
    if (!s) continue;
    if (node?.kind !== 'dir') return undefined;
    node = node.children.get(s);
  }
  return node;
}

/** A directory's listing: one child per line, directories with a trailing `/`. */
export function listing(d: Dir): string {
  if (d.listing) return d.listing.join('\n');
  return [...d.children].map(([name, child]) => (child.kind === 'dir' ? `${name}/` : name)).join('\n');
}
