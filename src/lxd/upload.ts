/**
 * Request bodies for `POST /1.0/images`: a unified tarball is sent as is
 * (`application/octet-stream`); a split image (metadata tarball + rootfs tarball or squashfs) as
 * `multipart/form-data` with the parts `metadata` and `rootfs`, as LXD's own client sends it.
 * Both stream from disk with an exact `Content-Length`, so a 100 MB image never sits in memory.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { LxdBody } from './http.js';
import { detach } from '../../core/errors.js';

/** Where an image comes from: one unified tarball, or its two halves. */
export type ImageSource = { readonly unified: string } | { readonly metadata: string; readonly rootfs: string };

/** The upload body for `source`, and the file name LXD records (`X-LXD-filename`). */
export async function imageUploadBody(source: ImageSource): Promise<{ body: LxdBody; filename: string }> {
  if ('unified' in source) {
    const { size } = await stat(source.unified);
    return {
      body: { stream: () => createReadStream(source.unified), length: size, contentType: 'application/octet-stream' },
      filename: path.basename(source.unified),
    };
  }
  const boundary = `mammatus-${randomBytes(12).toString('hex')}`;
  const parts = [
    { field: 'metadata', file: source.metadata },
    { field: 'rootfs', file: source.rootfs },
  ];
  const sizes = await Promise.all(parts.map(async (p) => (await stat(p.file)).size));
  const heads = parts.map((p) =>
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${p.field}"; filename="${path.basename(p.file).replace(/["\r\n]/g, '_')}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const middle = Buffer.from('\r\n');
  const length = heads[0].length + sizes[0] + middle.length + heads[1].length + sizes[1] + tail.length;
  const stream = (): Readable => {
    const out = new PassThrough();
    // The copy reports its failure on the stream itself (destroy), so nothing is left to reject.
    detach(
      (async () => {
        try {
          out.write(heads[0]);
          await pipeInto(createReadStream(parts[0].file), out);
          out.write(middle);
          out.write(heads[1]);
          await pipeInto(createReadStream(parts[1].file), out);
          out.end(tail);
        } catch (err) {
          out.destroy(err as Error);
        }
      })(),
      () => undefined,
    );
    return out;
  };
  return {
    body: { stream, length, contentType: `multipart/form-data; boundary=${boundary}` },
    filename: path.basename(source.rootfs),
  };
}

/** Copies `from` into `to` without ending `to`, honouring back-pressure. */
async function pipeInto(from: Readable, to: PassThrough): Promise<void> {
  for await (const chunk of from) {
    if (!to.write(chunk)) await new Promise<void>((resolve) => to.once('drain', resolve));
  }
}
