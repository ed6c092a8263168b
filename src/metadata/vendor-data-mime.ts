/**
 * A `multipart/mixed` MIME document of cloud-init parts, the format cloud-init's UserDataProcessor
 * splits (it looks for `MIME-Version:` in the first 4 KiB, then hands the text to Python's email
 * parser, which reads LF line ends as well as CRLF; `cloud-init devel make-mime` writes LF too).
 * Pure and deterministic: the boundary is a digest of the parts, so the same parts give the same
 * bytes, and golden tests stay stable.
 */
import { createHash } from 'node:crypto';

/** One attachment of the document. */
export interface MimePart {
  /** E.g. `text/x-shellscript`, `text/cloud-config`. */
  readonly contentType: string;
  /** Becomes the file name cloud-init stores the part under (scripts run in name order). */
  readonly filename: string;
  readonly content: string;
}

// RFC 5322 allows at most 998 characters per line; a longer one goes base64 too.
const MAX_LINE = 998;

/** Builds the document; an empty list gives an empty string (cloud-init then has no vendor-data). */
export function encodeMultipart(parts: readonly MimePart[]): string {
  if (parts.length === 0) return '';
  const digest = createHash('sha256');
  for (const p of parts) digest.update(`${p.contentType}\0${p.filename}\0${p.content}\0`);
  const boundary = `==mammatus-${digest.digest('hex').slice(0, 32)}==`;
  const out = [`Content-Type: multipart/mixed; boundary="${boundary}"`, 'MIME-Version: 1.0', ''];
  for (const p of parts) {
    if (!/^[\w.-]+$/.test(p.filename)) throw new Error(`MIME part file name ${JSON.stringify(p.filename)} is not a plain file name`);
    const plain = isPlain(p.content);
    // A digest of the content cannot occur in it, but a wrong document must never go out.
    if (plain && p.content.includes(boundary)) throw new Error('MIME boundary occurs in a part');
    out.push(
      `--${boundary}`,
      `Content-Type: ${p.contentType}; charset="utf-8"`,
      'MIME-Version: 1.0',
      `Content-Transfer-Encoding: ${plain ? '7bit' : 'base64'}`,
      `Content-Disposition: attachment; filename="${p.filename}"`,
      '',
      // The line end that join() puts before the next delimiter belongs to the delimiter, so the
      // payload cloud-init writes out is exactly `content`.
      plain ? p.content : base64Lines(p.content),
    );
  }
  out.push(`--${boundary}--`, '');
  return out.join('\n');
}

/**
 * True when `text` can travel as 7bit: printable ASCII, tabs and LFs, short lines. Anything else goes
 * base64, because cloud-init 22.4 decodes an 8-bit part body as Latin-1 (verified: "café" became
 * "caf\udce9"), and a stray CR could be read as a line end.
 */
function isPlain(text: string): boolean {
  return /^[\t\n\x20-\x7e]*$/.test(text) && text.split('\n').every((line) => line.length <= MAX_LINE);
}

/** Base64 of the UTF-8 bytes in 76-character lines, as MIME writes it. */
function base64Lines(text: string): string {
  return (
    Buffer.from(text, 'utf8')
      .toString('base64')
      .match(/.{1,76}/g) ?? []
  ).join('\n');
}
