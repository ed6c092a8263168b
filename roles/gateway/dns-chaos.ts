/**
 * dnsmasq's statistics, as it answers them: CHAOS-class TXT queries for `cachesize.bind`,
 * `insertions.bind`, `evictions.bind`, `misses.bind`, `hits.bind`, `auth.bind` and `servers.bind`
 * (dnsmasq(8), "NOTES"). Node's resolver asks only the IN class, so this is a minimal DNS message
 * builder and parser for exactly these questions (RFC 1035 §4); pure, the UDP exchange is in
 * `dns-stats.ts`.
 */

/** The names dnsmasq answers with its counters, in the order they are asked. */
export const DNSMASQ_STAT_NAMES = [
  'cachesize.bind',
  'insertions.bind',
  'evictions.bind',
  'misses.bind',
  'hits.bind',
  'auth.bind',
  'servers.bind',
] as const;

/** One of {@link DNSMASQ_STAT_NAMES}. */
export type DnsmasqStatName = (typeof DNSMASQ_STAT_NAMES)[number];

const TYPE_TXT = 16;
const CLASS_CH = 3;
/** Pointers followed while reading one name: a loop of pointers must end. */
const MAX_POINTERS = 16;

/** A query for `name`, class CH, type TXT, with message id `id` (no recursion asked). */
export function buildChaosQuery(id: number, name: string): Buffer {
  const labels = name.split('.').filter(Boolean);
  const qname = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id & 0xffff, 0);
  header.writeUInt16BE(1, 4); // one question
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(TYPE_TXT, 0);
  tail.writeUInt16BE(CLASS_CH, 2);
  return Buffer.concat([header, qname, tail]);
}

/** The message id of a DNS message, or undefined when it is too short to have one. */
export function messageId(msg: Buffer): number | undefined {
  return msg.length >= 2 ? msg.readUInt16BE(0) : undefined;
}

/** The offset just past the name at `offset` (compression pointers end a name). */
function skipName(msg: Buffer, offset: number): number {
  let at = offset;
  for (let hops = 0; hops <= MAX_POINTERS;) {
    if (at >= msg.length) throw new Error('DNS answer: name runs past the end');
    const len = msg[at];
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2; // a pointer ends the name in place
    if (len & 0xc0) throw new Error('DNS answer: unknown label type');
    at += 1 + len;
    hops++;
  }
  throw new Error('DNS answer: name too long');
}

/**
 * The TXT strings of the answer to a CHAOS query (every string of every TXT record, in order).
 * Throws on a message that is not a successful answer with the id `id`, or is malformed.
 */
export function parseTxtAnswer(msg: Buffer, id: number): string[] {
  if (msg.length < 12) throw new Error('DNS answer: shorter than a header');
  if (msg.readUInt16BE(0) !== (id & 0xffff)) throw new Error('DNS answer: wrong message id');
  const flags = msg.readUInt16BE(2);
  if (!(flags & 0x8000)) throw new Error('DNS answer: not a response');
  if (flags & 0x0200) throw new Error('DNS answer: truncated');
  const rcode = flags & 0x000f;
  if (rcode !== 0) throw new Error(`DNS answer: rcode ${rcode}`);
  const questions = msg.readUInt16BE(4);
  const answers = msg.readUInt16BE(6);
  let at = 12;
  for (let i = 0; i < questions; i++) at = skipName(msg, at) + 4;
  const out: string[] = [];
  for (let i = 0; i < answers; i++) {
    at = skipName(msg, at);
    if (at + 10 > msg.length) throw new Error('DNS answer: record header runs past the end');
    const type = msg.readUInt16BE(at);
    const rdlength = msg.readUInt16BE(at + 8);
    const rdata = at + 10;
    const end = rdata + rdlength;
    if (end > msg.length) throw new Error('DNS answer: record data runs past the end');
    if (type === TYPE_TXT) {
      for (let p = rdata; p < end;) {
        const len = msg[p];
        if (p + 1 + len > end) throw new Error('DNS answer: TXT string runs past its record');
        out.push(msg.toString('latin1', p + 1, p + 1 + len));
        p += 1 + len;
      }
    }
    at = end;
  }
  return out;
}

/** One upstream server as `servers.bind` reports it. */
export interface UpstreamStats {
  /** `address#port`, as dnsmasq writes it. */
  readonly server: string;
  readonly queries: number;
  readonly failures: number;
}

/** dnsmasq's counters (undefined: not answered, or not a number). */
export interface DnsmasqStats {
  readonly cacheSize?: number;
  readonly insertions?: number;
  readonly evictions?: number;
  readonly misses?: number;
  readonly hits?: number;
  readonly auth?: number;
  /** Undefined when `servers.bind` was not answered (not: no upstream). */
  readonly servers?: readonly UpstreamStats[];
}

/** Parses `servers.bind`'s strings: `address#port queries failed` each; others are skipped. */
export function parseServers(strings: readonly string[]): UpstreamStats[] {
  const out: UpstreamStats[] = [];
  for (const s of strings) {
    const m = /^(\S+)\s+(\d+)\s+(\d+)/.exec(s.trim());
    if (m) out.push({ server: m[1], queries: Number(m[2]), failures: Number(m[3]) });
  }
  return out;
}

/** dnsmasq's counters from the TXT strings answered per name (a missing name leaves its field out). */
export function parseDnsmasqStats(answers: ReadonlyMap<DnsmasqStatName, readonly string[]>): DnsmasqStats {
  const num = (name: DnsmasqStatName): number | undefined => {
    const s = answers.get(name)?.[0]?.trim();
    return s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined;
  };
  const fields = {
    cacheSize: num('cachesize.bind'),
    insertions: num('insertions.bind'),
    evictions: num('evictions.bind'),
    misses: num('misses.bind'),
    hits: num('hits.bind'),
    auth: num('auth.bind'),
  };
  const defined = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  const servers = answers.get('servers.bind');
  return { ...defined, ...(servers ? { servers: parseServers(servers) } : {}) };
}
