/**
 * A small XML writer for Query responses: element trees in, a UTF-8 document out. Only element text
 * is ever written (AWS responses carry no attributes except the root's `xmlns`).
 */

/** An element with either text or child elements. */
export interface XmlNode {
  readonly name: string;
  readonly text?: string;
  readonly children?: readonly XmlNode[];
  /** Only used on the root element. */
  readonly xmlns?: string;
}

/** An element holding `content`: text, or a list of children. */
export function el(name: string, content?: string | readonly XmlNode[]): XmlNode {
  return typeof content === 'string' ? { name, text: content } : { name, children: content ?? [] };
}

/** `[<name>value</name>]`, or `[]` when the value is absent: for optional members. */
export function opt(name: string, value: string | number | boolean | undefined | null): XmlNode[] {
  return value === undefined || value === null ? [] : [el(name, String(value))];
}

// Characters XML 1.0 allows: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
// A JS regex with the `u` flag sees astral characters as one code point, and lone surrogates as
// themselves, so the class below catches exactly the disallowed ones.
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/**
 * Escapes element text. `\r` is written as a character reference because XML parsers turn a literal
 * CR (or CRLF) into LF, which would change message bodies and break their MD5; `&#xD;` is the
 * spelling AWS uses and the one client-sqs ≤ 3.445 decodes (it registers exactly that entity). Characters that XML
 * 1.0 cannot carry at all, not even as references, become U+FFFD: SQS refuses them in message bodies
 * and attribute values (`InvalidMessageContents`), so only engine-supplied text could contain them,
 * and a well-formed document matters more than that text.
 */
export function escapeXmlText(text: string): string {
  return text.replace(NOT_XML_CHAR, '\uFFFD').replace(/[&<>\r]/g, (c) => ESCAPES[c] ?? c);
}
const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': '&#xD;' };

/** Renders `root` as a complete document with the XML declaration AWS sends. */
export function renderXml(root: XmlNode): string {
  const out: string[] = ['<?xml version="1.0"?>'];
  write(root, out);
  return out.join('');
}

function write(node: XmlNode, out: string[]): void {
  const open = node.xmlns === undefined ? node.name : `${node.name} xmlns="${escapeXmlText(node.xmlns)}"`;
  if (node.text !== undefined) {
    out.push(`<${open}>`, escapeXmlText(node.text), `</${node.name}>`);
    return;
  }
  const children = node.children ?? [];
  if (children.length === 0) {
    out.push(`<${open}/>`);
    return;
  }
  out.push(`<${open}>`);
  for (const child of children) write(child, out);
  out.push(`</${node.name}>`);
}
