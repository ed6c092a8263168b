/** The metadata proxy's config: upstreams from Serf's controllers, or configured; none without a secret. */
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { metadataUpstreams, renderMetadataProxyConf } from '../../../roles/gateway/render-metadata.js';
import { renderHopLimit } from '../../../roles/gateway/render-iptables.js';
import { renderGateway } from '../../../roles/gateway/render.js';

const member = (name: string, addr: string, role: string, status = 'alive'): Member =>
  ({
    name,
    addr,
    port: 7946,
    tags: { role },
    status,
    protocol: { min: 2, max: 5, cur: 4 },
    delegate: { min: 2, max: 5, cur: 4 },
  }) as unknown as Member;
const members = [
  member('ctl-b', '10.88.0.12', 'controller'),
  member('ctl-a', '10.88.0.11', 'compute,controller'),
  member('ctl-dead', '10.88.0.9', 'controller', 'failed'),
  member('ctl-gone', '10.88.0.8', 'controller', 'left'),
  member('cmp', '10.88.0.20', 'compute'),
];

describe('metadata proxy config', () => {
  it('forwards to the alive controllers first, then failed ones; never to departed ones', () => {
    const cfg = parseGatewayConfig({ metadata: { secret_file: '/etc/mammatus/metadata.secret' } });
    expect(metadataUpstreams(cfg, members)).toEqual(['http://10.88.0.11:8775', 'http://10.88.0.12:8775', 'http://10.88.0.9:8775']);
    expect(renderMetadataProxyConf(cfg, members)).toMatchSnapshot();
  });
  it('never forwards to a member tagged controller whose trust tag does not prove it (0evil sorts first)', () => {
    const cfg = parseGatewayConfig({ metadata: { secret_file: '/s' } });
    const checked = [
      { ...member('0evil', '10.88.0.66', 'controller'), trusted: [] },
      { ...member('ctl-a', '10.88.0.11', 'controller'), trusted: ['controller'] },
      { ...member('cmp', '10.88.0.20', 'compute,controller'), trusted: ['compute'] },
    ];
    expect(metadataUpstreams(cfg, checked)).toEqual(['http://10.88.0.11:8775']);
  });
  it('uses configured upstreams as they are', () => {
    const cfg = parseGatewayConfig({ metadata: { secret_file: '/s', upstreams: ['http://10.0.0.5:9000'] } });
    expect(metadataUpstreams(cfg, members)).toEqual(['http://10.0.0.5:9000']);
  });
  it('renders nothing without the cluster secret', () => {
    expect(renderMetadataProxyConf(parseGatewayConfig({}), members)).toBeUndefined();
  });
  it('refuses upstreams that are not http(s)', () => {
    expect(() => parseGatewayConfig({ metadata: { upstreams: ['tftp://10.0.0.5/x'] } })).toThrow(
      /metadata.upstreams\[0\]: must be an http/,
    );
  });
});

describe('metadata hop limit', () => {
  it("sets the TTL of the proxy's answers on the LAN in a mangle chain of its own", () => {
    const cfg = parseGatewayConfig({ lan: { interface: 'lan0' }, metadata: { secret_file: '/s', hop_limit: 2 } });
    expect(renderHopLimit(cfg)).toBe(
      [
        '# managed by mammatus role=gateway',
        "# TTL of the metadata proxy's answers: metadata.hop_limit",
        '*mangle',
        ':MAMMATUS-GW-HOPS - [0:0]',
        '-A MAMMATUS-GW-HOPS -o lan0 -p tcp --sport 8776 -j TTL --ttl-set 2',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(parseGatewayConfig({}).metadata.hop_limit).toBe(1);
    expect(() => parseGatewayConfig({ metadata: { hop_limit: 0 } })).toThrow(/roles.gateway.metadata.hop_limit/);
  });
  it('is rendered with the proxy only', () => {
    const desired = (metadata: Record<string, unknown>) => ({ node: 'gw', config: { metadata }, members: [], instances: [] });
    const paths = (metadata: Record<string, unknown>) => renderGateway(desired(metadata) as never).map((f) => f.path);
    expect(paths({ secret_file: '/s' })).toContain('/etc/mammatus/gateway/hop-limit.rules');
    expect(paths({})).not.toContain('/etc/mammatus/gateway/hop-limit.rules');
  });
});
