import { describe, it, expect } from 'vitest';
import {
  broadcast,
  contains,
  formatCidr,
  formatIPv4,
  isDnsLabel,
  isDnsName,
  isHostname,
  isHostOf,
  isHostPort,
  isIPv4,
  parseHostPort,
  urlHost,
  netmask,
  network,
  parseCidr,
  parseIPv4,
  parseIPv4Port,
  subnetOf,
  type Cidr,
} from '../../core/net.js';

const cidr = (text: string): Cidr => {
  const parsed = parseCidr(text);
  if (!parsed) throw new Error(`bad test CIDR ${text}`);
  return parsed;
};

describe('parseIPv4 / formatIPv4', () => {
  it.each([
    ['0.0.0.0', 0],
    ['10.88.0.1', 0x0a580001],
    ['255.255.255.255', 0xffffffff],
    ['192.168.1.254', 0xc0a801fe],
  ])('%s ↔ %i', (text, value) => {
    expect(parseIPv4(text)).toBe(value);
    expect(formatIPv4(value)).toBe(text);
    expect(isIPv4(text)).toBe(true);
  });

  it.each(['', '10.88.0', '10.88.0.1.2', '256.0.0.1', '10.088.0.1', '01.2.3.4', '1.2.3.-4', ' 1.2.3.4', '1.2.3.4\n', 'a.b.c.d', '::1'])(
    'refuses %j',
    (text) => {
      expect(parseIPv4(text)).toBeUndefined();
      expect(isIPv4(text)).toBe(false);
    },
  );
});

describe('parseCidr / formatCidr', () => {
  it('parses the address as written and the prefix length', () => {
    expect(parseCidr('10.88.0.1/24')).toEqual({ address: 0x0a580001, prefix: 24 });
    expect(formatCidr(cidr('10.88.0.1/24'))).toBe('10.88.0.1/24');
    expect(parseCidr('0.0.0.0/0')).toEqual({ address: 0, prefix: 0 });
    expect(parseCidr('1.2.3.4/32')).toEqual({ address: 0x01020304, prefix: 32 });
  });

  it.each(['10.88.0.1', '10.88.0.1/', '10.88.0.1/33', '10.88.0.1/024', '10.88.0.1/-1', '10.88.0.1/24/1', '10.88.0/24'])(
    'refuses %j',
    (text) => {
      expect(parseCidr(text)).toBeUndefined();
    },
  );
});

describe('netmask / network / broadcast / subnetOf', () => {
  it.each([
    [0, '0.0.0.0'],
    [8, '255.0.0.0'],
    [24, '255.255.255.0'],
    [25, '255.255.255.128'],
    [30, '255.255.255.252'],
    [32, '255.255.255.255'],
  ])('netmask(/%i) is %s', (prefix, mask) => {
    expect(formatIPv4(netmask(prefix))).toBe(mask);
  });

  it.each([
    ['10.88.0.1/24', '10.88.0.0', '10.88.0.255'],
    ['172.16.5.1/16', '172.16.0.0', '172.16.255.255'],
    ['192.168.1.130/25', '192.168.1.128', '192.168.1.255'],
    ['200.1.2.3/8', '200.0.0.0', '200.255.255.255'],
    ['1.2.3.4/32', '1.2.3.4', '1.2.3.4'],
  ])('%s spans %s–%s', (text, net, last) => {
    expect(formatIPv4(network(cidr(text)))).toBe(net);
    expect(formatIPv4(broadcast(cidr(text)))).toBe(last);
    expect(subnetOf(cidr(text))).toBe(`${net}/${text.split('/')[1]}`);
  });
});

describe('contains / isHostOf', () => {
  const lan = cidr('10.88.0.1/24');
  const ip = (text: string): number => parseIPv4(text) ?? Number.NaN;

  it('contains every address of the subnet, network and broadcast included', () => {
    for (const text of ['10.88.0.0', '10.88.0.1', '10.88.0.200', '10.88.0.255']) expect(contains(lan, ip(text))).toBe(true);
    for (const text of ['10.88.1.0', '10.87.255.255', '0.0.0.0', '255.255.255.255']) expect(contains(lan, ip(text))).toBe(false);
  });

  it('counts only usable host addresses as hosts', () => {
    expect(isHostOf(lan, ip('10.88.0.1'))).toBe(true);
    expect(isHostOf(lan, ip('10.88.0.254'))).toBe(true);
    expect(isHostOf(lan, ip('10.88.0.0'))).toBe(false);
    expect(isHostOf(lan, ip('10.88.0.255'))).toBe(false);
    expect(isHostOf(lan, ip('10.88.1.1'))).toBe(false);
  });

  it('treats every address of a /31 or /32 as a host (RFC 3021)', () => {
    expect(isHostOf(cidr('10.0.0.0/31'), ip('10.0.0.0'))).toBe(true);
    expect(isHostOf(cidr('10.0.0.0/31'), ip('10.0.0.1'))).toBe(true);
    expect(isHostOf(cidr('10.0.0.7/32'), ip('10.0.0.7'))).toBe(true);
  });

  it('handles /0 without shifting by 32', () => {
    expect(contains(cidr('0.0.0.0/0'), ip('203.0.113.9'))).toBe(true);
  });
});

describe('parseIPv4Port', () => {
  it('splits IP:PORT', () => {
    expect(parseIPv4Port('10.88.0.10:8080')).toEqual({ ip: '10.88.0.10', port: 8080 });
    expect(parseIPv4Port('10.88.0.10:65535')).toEqual({ ip: '10.88.0.10', port: 65535 });
  });

  it.each(['10.88.0.10', '10.88.0.10:0', '10.88.0.10:65536', 'host:80', '10.88.0.10:080', ':80', '10.88.0.256:80'])(
    'refuses %j',
    (text) => {
      expect(parseIPv4Port(text)).toBeUndefined();
    },
  );
});

describe('isDnsLabel', () => {
  it.each([
    ['web-1', true],
    ['a', true],
    ['A1', true],
    ['x'.repeat(63), true],
    ['x'.repeat(64), false],
    ['-a', false],
    ['a-', false],
    ['bad_name!', false],
    ['a.b', false],
    ['', false],
  ])('isDnsLabel(%j) is %s', (text, ok) => {
    expect(isDnsLabel(text)).toBe(ok);
  });
});

describe('host names and host:port', () => {
  it('reads host:port with an IPv4 address, a host name or [IPv6]', () => {
    expect(parseHostPort('127.0.0.1:7373')).toEqual({ host: '127.0.0.1', port: 7373 });
    expect(parseHostPort('[::1]:7373')).toEqual({ host: '::1', port: 7373 });
    expect(parseHostPort('serf_1.lab:7373')).toEqual({ host: 'serf_1.lab', port: 7373 });
    for (const bad of ['127.0.0.1', ':7373', 'h:0', 'h:65536', '::1:7373', 'h:07', '[nope]:1', 'a b:1'])
      expect(parseHostPort(bad), bad).toBeUndefined();
    expect(parseHostPort('0.0.0.0:0', { allowPortZero: true })).toEqual({ host: '0.0.0.0', port: 0 });
    expect(isHostPort('localhost:9324')).toBe(true);
  });
  it('tells host names, DNS labels and DNS names apart', () => {
    expect(isHostname('node_1.lab.')).toBe(true);
    expect(isHostname('-x')).toBe(false);
    expect(isDnsName('lab.example')).toBe(true);
    expect(isDnsName('lab_1.example')).toBe(false);
    expect(isDnsName(`${'a'.repeat(63)}.`.repeat(4) + 'a')).toBe(false);
  });
  it('brackets IPv6 addresses for URLs', () => {
    expect(urlHost('fd00::1')).toBe('[fd00::1]');
    expect(urlHost('10.0.0.1')).toBe('10.0.0.1');
    expect(urlHost('[fd00::1]')).toBe('[fd00::1]');
  });
});
