/**
 * Reads dnsmasq's counters over UDP: the seven CHAOS TXT questions of `dns-chaos.ts`, sent at
 * once from one socket, answered within one time bound. Read once per scrape, so it must stay
 * cheap and never hang: whatever has not answered by the deadline is left out.
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { isIPv6 } from 'node:net';
import {
  buildChaosQuery,
  DNSMASQ_STAT_NAMES,
  messageId,
  parseDnsmasqStats,
  parseTxtAnswer,
  type DnsmasqStatName,
  type DnsmasqStats,
} from './dns-chaos.js';

/** How long one read waits for dnsmasq's answers (ms). */
export const DNS_STATS_TIMEOUT_MS = 500;

/** Reads dnsmasq's counters from the DNS server at `server`:`port`. */
export type DnsStatsReader = (server: string, port?: number) => Promise<DnsmasqStats>;

/**
 * Asks dnsmasq at `server`:`port` for its counters; resolves with those answered within
 * `timeoutMs`, and rejects when none was (dnsmasq down, or not there).
 */
export function readDnsmasqStats(server: string, port = 53, timeoutMs = DNS_STATS_TIMEOUT_MS): Promise<DnsmasqStats> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(isIPv6(server) ? 'udp6' : 'udp4');
    // Random ids: an answer to someone else's question (or a late one to ours) is not taken.
    const base = randomInt(0, 0x10000 - DNSMASQ_STAT_NAMES.length);
    const pending = new Map<number, DnsmasqStatName>(DNSMASQ_STAT_NAMES.map((n, i) => [base + i, n]));
    const answers = new Map<DnsmasqStatName, string[]>();
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      if (answers.size === 0) reject(err ?? new Error(`dnsmasq at ${server}:${port} did not answer within ${timeoutMs} ms`));
      else resolve(parseDnsmasqStats(answers));
    };
    const timer = setTimeout(() => finish(), timeoutMs);
    socket.on('error', (err) => finish(err));
    socket.on('message', (msg, from) => {
      // Only dnsmasq itself: another LAN host could otherwise answer with counters of its own making.
      if (from.port !== port || from.address !== server) return;
      const id = messageId(msg);
      const name = id === undefined ? undefined : pending.get(id);
      if (id === undefined || !name) return;
      try {
        answers.set(name, parseTxtAnswer(msg, id));
      } catch {
        // A refused or malformed answer leaves that counter out.
      }
      pending.delete(id);
      if (pending.size === 0) finish();
    });
    for (const [id, name] of pending) {
      socket.send(buildChaosQuery(id, name), port, server, (err) => {
        if (err) finish(err);
      });
    }
  });
}
