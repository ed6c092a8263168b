/**
 * `mammatus image import FILE --alias ALIAS`: puts an image tarball (as `scripts/build-image.sh`
 * makes it: LXD's unified format) into this node's LXD and points the alias at it. Importing an
 * image LXD already has only (re)points the alias.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { DEFAULT_LXD_SOCKET, LxdClient, LxdConflictError, LxdError } from '../../src/lxd/client.js';
import { UsageError, type CliIo } from './common.js';

/** `image import` flags. */
export interface ImageImportOptions {
  alias: string;
  lxdSocket?: string;
  /** Re-point the alias when it names another image. */
  replace?: boolean;
  json?: boolean;
}

/** Imports `file`; exit 0 on success, 1 when LXD refuses or cannot be reached, 2 on bad input. */
export async function imageImportCommand(
  file: string,
  opts: ImageImportOptions,
  io: CliIo,
  connect = (socketPath: string) => new LxdClient({ socketPath, operationTimeoutMs: 600_000 }),
): Promise<number> {
  if (!opts.alias) throw new UsageError('--alias is required');
  await access(file).catch(() => {
    throw new UsageError(`${file}: no such file`);
  });
  const lxd = connect(opts.lxdSocket ?? DEFAULT_LXD_SOCKET);
  try {
    const replaceAlias = opts.replace ?? false;
    const fingerprint = await lxd.importImage({ unified: file }, { alias: opts.alias, replaceAlias }).then(
      (r) => r.fingerprint,
      async (err: unknown) => {
        // The same bytes imported before (LXD keeps one copy): only the alias may need pointing.
        if (!(err instanceof LxdConflictError) || !/same fingerprint/i.test(err.message)) throw err;
        const fp = await sha256(file); // a unified tarball's fingerprint is its SHA-256
        await pointAlias(lxd, opts.alias, fp, replaceAlias);
        return fp;
      },
    );
    io.out(
      opts.json ? JSON.stringify({ fingerprint, alias: opts.alias }) : `imported ${file} as ${opts.alias} (${fingerprint.slice(0, 12)})`,
    );
    return 0;
  } catch (err) {
    if (!(err instanceof LxdError)) throw err;
    io.err(`error: ${err.message}`);
    return 1;
  } finally {
    lxd.close();
  }
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Points `alias` at `fingerprint`: created, or re-pointed (with its ETag) when `replace`. */
async function pointAlias(lxd: LxdClient, alias: string, fingerprint: string, replace: boolean): Promise<void> {
  try {
    return await lxd.createImageAlias(alias, fingerprint);
  } catch (err) {
    if (!(err instanceof LxdConflictError)) throw err;
    const current = await lxd.getImageAlias(alias);
    if (current.value.target === fingerprint) return;
    if (!replace)
      throw new LxdConflictError(`alias ${alias} already names image ${current.value.target.slice(0, 12)} (--replace to re-point it)`, 409);
    await lxd.updateImageAlias(alias, fingerprint, { etag: current.etag });
  }
}
