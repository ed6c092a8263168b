import { describe, it, expect } from 'vitest';
import type { AgentView } from '../../agent/types.js';
import type { RoleStatus } from '../../roles/types.js';
import { buildStatus, registerStatus, STATUS_MAX_BYTES, STATUS_QUERY } from '../../handlers/status.js';

function view(roleStatus: Record<string, RoleStatus>, node = 'node-1'): AgentView {
  return {
    version: '0.1.0',
    node: () => node,
    uptimeSeconds: () => 3600,
    roles: () => Object.keys(roleStatus),
    roleStatus: () => roleStatus,
    reconcile: () => Promise.resolve(),
  };
}

const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));
const at = new Date('2026-01-02T03:04:05.000Z');

describe('buildStatus', () => {
  it('carries the trust section, and still fits 900 bytes with long role errors beside it', () => {
    const errors = ['Serf gossip is not encrypted (serf agent -encrypt / keyring)', 'Serf RPC has no auth key (serf.rpc_auth)'];
    const roles = Object.fromEntries(
      ['gateway', 'compute', 'storage', 'controller'].map((r) => [r, { state: 'error' as const, error: 'x'.repeat(400) }]),
    );
    const answer = buildStatus({ ...view(roles), trust: () => ({ admitted: ['compute'], errors }) });
    expect(answer.trust).toMatchObject({ admitted: ['compute'] });
    expect(answer.trust!.errors).toHaveLength(2);
    expect(bytes(answer)).toBeLessThanOrEqual(STATUS_MAX_BYTES);
    expect(buildStatus({ ...view({}), trust: () => ({ errors: [] }) }).trust).toEqual({ admitted: null, errors: [] });
  });

  it('carries the tls section, its error shortened, and still fits 900 bytes', () => {
    const roles = Object.fromEntries(
      ['gateway', 'compute', 'storage', 'controller'].map((r) => [r, { state: 'error' as const, error: 'x'.repeat(400) }]),
    );
    const tls = { not_after: '2026-12-07T00:00:00.000Z', renew_at: '2026-12-06T16:00:00.000Z', last_error: 'e'.repeat(2000), issued: 4 };
    const answer = buildStatus({ ...view(roles), tls: () => tls });
    expect(answer.tls).toMatchObject({ not_after: tls.not_after, renew_at: tls.renew_at, issued: 4 });
    expect(answer.tls!.last_error!.length).toBeLessThanOrEqual(160);
    expect(bytes(answer)).toBeLessThanOrEqual(STATUS_MAX_BYTES);
    expect(buildStatus({ ...view({}), tls: () => ({ ...tls, last_error: null }) }).tls?.last_error).toBeNull();
    // Nothing tried yet: no section.
    expect(buildStatus({ ...view({}), tls: () => undefined }).tls).toBeUndefined();
  });

  it("carries a role's one-line detail, shortened to 80 characters", () => {
    const answer = buildStatus(
      view({
        compute: { state: 'ok', appliedAt: at, detail: '3 instances (2 running), 1 unmanaged' },
        storage: { state: 'ok', detail: 'y'.repeat(200) },
      }),
    );
    expect(answer.role_status.compute).toEqual({
      state: 'ok',
      applied_at: at.toISOString(),
      detail: '3 instances (2 running), 1 unmanaged',
    });
    expect(answer.role_status.storage?.detail).toHaveLength(80);
  });

  it('reports node, roles, version, uptime and per-role state', () => {
    const answer = buildStatus(
      view({
        gateway: { state: 'ok', appliedAt: at },
        compute: { state: 'pending' },
        storage: { state: 'error', appliedAt: at, error: 'nft -f failed: exit 1' },
      }),
    );
    expect(answer).toEqual({
      node: 'node-1',
      roles: ['gateway', 'compute', 'storage'],
      version: '0.1.0',
      uptime_s: 3600,
      role_status: {
        gateway: { state: 'ok', applied_at: '2026-01-02T03:04:05.000Z' },
        compute: { state: 'pending', applied_at: null },
        storage: { state: 'error', applied_at: '2026-01-02T03:04:05.000Z', error: 'nft -f failed: exit 1' },
      },
    });
  });

  it('keeps short errors intact', () => {
    const error = 'x'.repeat(160);
    const answer = buildStatus(view({ gateway: { state: 'error', error }, compute: { state: 'error', error: 'short' } }));
    expect(answer.role_status.gateway?.error).toBe(error);
    expect(answer.role_status.compute?.error).toBe('short');
  });

  it('stays within 900 bytes with four roles carrying 2 KB errors each', () => {
    const long = (c: string) => c.repeat(2048);
    const answer = buildStatus(
      view({
        gateway: { state: 'error', appliedAt: at, error: long('g') },
        compute: { state: 'error', appliedAt: at, error: long('c') },
        storage: { state: 'error', appliedAt: at, error: long('s') },
        controller: { state: 'error', appliedAt: at, error: long('k') },
      }),
    );
    expect(STATUS_MAX_BYTES).toBe(900);
    expect(bytes(answer)).toBeLessThanOrEqual(900);
    // Shortened, not dropped: each error keeps a prefix and ends with an ellipsis.
    for (const [name, s] of Object.entries(answer.role_status)) {
      expect(s.state).toBe('error');
      expect(s.error, name).toMatch(/^(.)\1+…$/);
      expect(s.error!.length).toBeLessThan(2048);
    }
  });

  it('stays within the limit with multi-byte errors', () => {
    const answer = buildStatus(
      view(
        Object.fromEntries(
          ['gateway', 'compute', 'storage', 'controller', 'unknown-role'].map((n) => [n, { state: 'error', error: '⚠'.repeat(2048) }]),
        ),
      ),
    );
    expect(bytes(answer)).toBeLessThanOrEqual(900);
  });

  it('drops errors entirely when even short ones do not fit', () => {
    const roles = Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [`role-${i}`, { state: 'error' as const, appliedAt: at, error: 'e'.repeat(500) }]),
    );
    const answer = buildStatus(view(roles));
    expect(Object.values(answer.role_status).every((s) => s.error === undefined)).toBe(true);
    expect(Object.keys(answer.role_status)).toHaveLength(12);
  });

  it('honours a smaller maxBytes', () => {
    // 160 characters do not fit in 250 bytes; 60 do (206 bytes).
    const answer = buildStatus(view({ gateway: { state: 'error', error: 'z'.repeat(300) } }), 250);
    expect(bytes(answer)).toBeLessThanOrEqual(250);
    expect(answer.role_status.gateway?.error).toBe(`${'z'.repeat(59)}…`);
  });
});

describe('registerStatus', () => {
  it(`registers query:${STATUS_QUERY} answering buildStatus`, async () => {
    const registered: [string, (...a: never[]) => unknown][] = [];
    const v = view({ gateway: { state: 'ok' } });
    registerStatus({ on: (filter: string, h: (...a: never[]) => unknown) => void registered.push([filter, h]) }, v);
    expect(registered.map(([f]) => f)).toEqual(['query:mammatus.status']);
    expect(await registered[0][1]()).toEqual(buildStatus(v));
  });
});

describe('buildStatus with a role tag full of unknown names', () => {
  it('folds them into one entry and stays within 900 bytes', () => {
    const statuses: Record<string, RoleStatus> = { gateway: { state: 'ok', appliedAt: at } };
    for (let i = 0; i < 60; i++) statuses[`not-a-role-${i}`] = { state: 'error', error: 'unknown role' };
    // Unknown names are reported in role_status only; roles() lists the roles the node runs.
    const answer = buildStatus({ ...view(statuses), roles: () => ['gateway'] });
    expect(bytes(answer)).toBeLessThanOrEqual(STATUS_MAX_BYTES);
    expect(Object.keys(answer.role_status)).toEqual(['gateway', 'unknown']);
    expect(answer.role_status.unknown?.state).toBe('error');
  });
});
