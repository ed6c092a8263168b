/** Where a node keeps its TLS files: absolute, whatever `state_dir` looks like. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tlsPaths } from '../../agent/certs-plan.js';
import { isSafeAbsolutePath } from '../../core/validation.js';

describe('tlsPaths', () => {
  it('is absolute for a relative state_dir (the local cluster), so the controller settings take it', () => {
    const p = tlsPaths('.cluster/controller-1/state');
    expect(p.cert).toBe(path.resolve('.cluster/controller-1/state/tls/node.crt'));
    for (const f of [p.key, p.cert, p.ca]) expect(isSafeAbsolutePath(f) || f.includes(' ')).toBe(true);
    expect(tlsPaths('/var/lib/mammatus')).toEqual({
      dir: '/var/lib/mammatus/tls',
      key: '/var/lib/mammatus/tls/node.key',
      cert: '/var/lib/mammatus/tls/node.crt',
      ca: '/var/lib/mammatus/tls/ca.crt',
    });
  });
});
