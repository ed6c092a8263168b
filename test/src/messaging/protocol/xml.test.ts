import { expect, test } from 'vitest';
import { el, escapeXmlText, opt, renderXml } from '../../../../src/messaging/protocol/xml.js';

test('markup characters and CR are escaped; LF and tab stay literal', () => {
  expect(escapeXmlText('a<b>&c\r\n\td"\'')).toBe('a&lt;b&gt;&amp;c&#xD;\n\td"\'');
});

test('astral characters pass; characters XML 1.0 cannot carry become U+FFFD', () => {
  expect(escapeXmlText('\u{1F600}\u{10FFFF}')).toBe('\u{1F600}\u{10FFFF}');
  expect(escapeXmlText('a\u0000b\u0001c\uFFFEd\uD800e')).toBe('a\uFFFDb\uFFFDc\uFFFDd\uFFFDe');
});

test('documents: declaration, namespace on the root, empty elements self-closed, optional members', () => {
  const doc = renderXml({
    name: 'R',
    xmlns: 'urn:x',
    children: [el('A', 'x&y'), el('B', []), ...opt('C', undefined), ...opt('D', 0), ...opt('E', false)],
  });
  expect(doc).toBe('<?xml version="1.0"?><R xmlns="urn:x"><A>x&amp;y</A><B/><D>0</D><E>false</E></R>');
});
