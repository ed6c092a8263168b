/** The shared cache of recent bodies: bounded by bytes, oldest out first, per queue. */
import { expect, test } from 'vitest';
import { BodyCache } from '../../../../src/messaging/engine/body-cache.js';

const msg = (body: string) => ({ fields: { sentAt: 1, visibleAt: 1, senderId: 's' }, payload: { body, attributes: {} } });

test('evicts the oldest entries beyond the bound and never keeps huge ones', () => {
  const c = new BodyCache(8 * 1024);
  for (let i = 1; i <= 20; i += 1) c.set('q', i, msg(String(i)), 500);
  expect(c.size).toBeLessThanOrEqual(8 * 1024);
  expect(c.get('q', 1)).toBeUndefined();
  expect(c.get('q', 20)?.payload.body).toBe('20');
  c.set('q', 21, msg('big'), 2000);
  expect(c.get('q', 21)).toBeUndefined();
});

test('delete and deleteQueue forget entries and their bytes', () => {
  const c = new BodyCache();
  c.set('a', 1, msg('x'), 10);
  c.set('a', 2, msg('y'), 10);
  c.set('b', 1, msg('z'), 10);
  c.delete('a', 1);
  expect(c.get('a', 1)).toBeUndefined();
  c.deleteQueue('a');
  expect(c.get('a', 2)).toBeUndefined();
  expect(c.get('b', 1)?.payload.body).toBe('z');
  c.delete('b', 1);
  expect(c.size).toBe(0);
});
