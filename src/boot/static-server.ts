/**
 * A read-only static file server for network boot (the gateway's boot HTTP server, port 8777):
 * iPXE fetches its stub script, kernel and initrd from it, live-boot its squashfs, apt the cluster
 * repository. Anyone on the LAN may ask, so it serves only what it is told to — a few exact paths
 * and a few directory prefixes — and refuses everything else: methods other than GET and HEAD,
 * `.`/`..`/empty/dot-file segments (raw or percent-encoded), encoded slashes, NUL, backslashes,
 * anything that resolves (through a symlink) outside its root, and anything not a regular file (no
 * directory listings). Files are streamed, never buffered; one `bytes=` range is honoured (curl
 * and wget resume with it), anything fancier gets the whole file. Connections are bounded by
 * core/http-limits.ts, so a slow or idle client cannot hold the server.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../../core/contracts.js';
import { enforceConnectionLimits, serverOptions, type HttpLimits } from '../../core/http-limits.js';

/** What the server serves. */
export interface StaticRoutes {
  /** Exact URL path → file (e.g. `/boot.ipxe` → the rendered stub). */
  readonly files: Readonly<Record<string, string>>;
  /** URL prefix ending in `/` → directory served below it (e.g. `/apt/` → the repository). */
  readonly dirs: Readonly<Record<string, string>>;
}

/** The size of each read from a served file. */
const READ_CHUNK_BYTES = 1 << 20;

/** How to start it. */
export interface StaticServerOptions {
  readonly host: string;
  /** 0 = any free port (tests). */
  readonly port: number;
  readonly routes: StaticRoutes;
  readonly log: Logger;
  /** Overrides `BOOT_HTTP_LIMITS` (tests). */
  readonly limits?: HttpLimits;
}

/** A running server. */
export interface StaticServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * The limits: a boot client sends a small GET at once, then reads for as long as the squashfs
 * takes (bounded only by the idle timeout: a reader that stops reading for 30 s is cut off). A
 * rack of machines booting at once is a few dozen connections and one address needs a handful; the
 * total cap is far above that so that strangers holding connections to the cap (16 each) need 64
 * addresses to crowd the machines out, each for at most the header timeout.
 */
export const BOOT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5000,
  idleTimeoutMs: 30_000,
  maxConnections: 1024,
  maxConnectionsPerAddress: 16,
};

/** Request header bytes accepted (node answers 431 past it); boot clients send a few hundred. */
export const MAX_HEADER_BYTES = 8192;
/** URL length accepted; the longest path served is an apt pool file. */
const MAX_URL = 1024;

const TYPES: Readonly<Record<string, string>> = {
  '.ipxe': 'text/plain; charset=utf-8',
  '.gz': 'application/gzip',
  '.xz': 'application/x-xz',
  '.deb': 'application/vnd.debian.binary-package',
  '.asc': 'application/pgp-keys',
  '.gpg': 'application/pgp-keys',
};

/** The content type of a served file, by its extension (apt and iPXE ignore it; browsers do not). */
function contentType(file: string): string {
  return TYPES[path.extname(file)] ?? 'application/octet-stream';
}

/**
 * The URL path's segments, decoded, or undefined when any is unsafe: empty (`//`, trailing `/`),
 * `..` or a dot file, or holding `/`, `\` or NUL once decoded, or badly encoded. A lone `.` (this
 * directory) is dropped: apt asks for `/apt/./InRelease` and `/apt/./pool/…` from a flat
 * repository (`Suites: ./`, `Filename: ./…`), and it names nothing outside.
 */
export function safeSegments(rawPath: string): string[] | undefined {
  if (!rawPath.startsWith('/') || rawPath.length > MAX_URL) return undefined;
  const out: string[] = [];
  for (const raw of rawPath.slice(1).split('/')) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (seg === '.') continue;
    if (seg === '' || seg.startsWith('.') || /[/\\\0]/.test(seg)) return undefined;
    out.push(seg);
  }
  return out;
}

/**
 * The file a URL path names under `routes`, or undefined when none does. Only names it: whether
 * the file exists and stays inside its root is `openInside`'s business.
 */
export function routeOf(routes: StaticRoutes, rawPath: string): { root: string; file: string } | undefined {
  const segs = safeSegments(rawPath);
  if (!segs) return undefined;
  const clean = `/${segs.join('/')}`;
  const exact = routes.files[clean];
  if (exact !== undefined) return { root: exact, file: exact };
  for (const [prefix, root] of Object.entries(routes.dirs)) {
    if (!clean.startsWith(prefix)) continue;
    const rest = clean.slice(prefix.length).split('/');
    if (rest.length === 0 || rest[0] === '') continue;
    return { root, file: path.join(root, ...rest) };
  }
  return undefined;
}

/**
 * Opens `file` for reading when it is a regular file whose real path is `root` itself or inside
 * it (a symlink out of the root is refused); undefined otherwise. The last component is opened
 * with O_NOFOLLOW, so a symlink swapped in after the check is refused too.
 */
async function openInside(root: string, file: string): Promise<{ handle: fsp.FileHandle; size: number; mtime: Date } | undefined> {
  let real: string;
  let realRoot: string;
  try {
    [realRoot, real] = await Promise.all([fsp.realpath(root), fsp.realpath(file)]);
  } catch {
    return undefined;
  }
  if (real !== realRoot && !real.startsWith(realRoot.endsWith('/') ? realRoot : `${realRoot}/`)) return undefined;
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(real, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const st = await handle.stat().catch(() => undefined);
  if (!st?.isFile()) {
    await handle.close().catch(() => undefined);
    return undefined;
  }
  return { handle, size: st.size, mtime: st.mtime };
}

/**
 * The byte range a `Range` header asks of a file of `size` bytes: `{start, end}` (inclusive), `'unsatisfiable'`,
 * or undefined for "send it all" (no header, several ranges, another unit, nonsense — RFC 9110 lets
 * a server ignore those).
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    // A suffix: the last N bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(text) + 1), ...headers });
  res.end(`${text}\n`);
}

/** Builds the server (not listening yet). */
export function buildStaticServer(routes: StaticRoutes, log: Logger, limits: HttpLimits = BOOT_HTTP_LIMITS): http.Server {
  const server = http.createServer({ ...serverOptions(limits), maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => {
    void handle(req, res).catch((err: unknown) => {
      log.warn({ err, path: req.url }, 'boot request failed');
      res.destroy();
    });
  });
  enforceConnectionLimits(server, limits);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const remote = req.socket.remoteAddress ?? '';
    const method = req.method ?? '';
    if (method !== 'GET' && method !== 'HEAD') {
      // Whatever body came with it is not read: close rather than drain it.
      return plain(res, 405, 'Method Not Allowed', { allow: 'GET, HEAD', connection: 'close' });
    }
    const rawPath = (req.url ?? '').split('?')[0];
    const route = routeOf(routes, rawPath);
    const opened = route && (await openInside(route.root, route.file));
    if (!opened) {
      log.debug({ remote, path: rawPath.slice(0, 200) }, 'boot file not served');
      return plain(res, 404, 'Not Found');
    }
    const { handle: fh, size, mtime } = opened;
    try {
      // If-Range with anything: the client's copy may be another version, so it gets the whole file.
      const range = req.headers['if-range'] ? undefined : parseRange(req.headers.range, size);
      const common = {
        'content-type': contentType(route.file),
        'last-modified': mtime.toUTCString(),
        'accept-ranges': 'bytes',
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
      };
      if (range === 'unsatisfiable') {
        await fh.close();
        return plain(res, 416, 'Range Not Satisfiable', { 'content-range': `bytes */${size}` });
      }
      const { start, end } = range ?? { start: 0, end: size - 1 };
      const length = size === 0 ? 0 : end - start + 1;
      res.writeHead(range ? 206 : 200, {
        ...common,
        'content-length': String(length),
        ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
      });
      if (method === 'HEAD' || length === 0) {
        await fh.close();
        res.end();
        return;
      }
      const began = Date.now();
      // The stream closes the handle when it ends or is destroyed (a client that hangs up).
      // 1 MiB reads instead of Node's 64 KiB: half the CPU per boot and busybox httpd's throughput
      // (bench/boot.ts, docs/benchmarks.md section 15), for at most 1 MiB buffered per download.
      await pipeline(fh.createReadStream({ start, end, autoClose: true, highWaterMark: READ_CHUNK_BYTES }), res);
      log.info({ remote, path: rawPath, status: range ? 206 : 200, bytes: length, ms: Date.now() - began }, 'boot file served');
    } catch (err) {
      await fh.close().catch(() => undefined);
      // A client that goes away mid-file is routine for a boot server (iPXE probes, retries).
      if (res.headersSent) return void log.debug({ remote, path: rawPath, err }, 'boot client went away');
      throw err;
    }
  }
  return server;
}

/** Starts the server on `host:port`; rejects when it cannot listen. */
export async function startStaticServer(opts: StaticServerOptions): Promise<StaticServer> {
  const server = buildStaticServer(opts.routes, opts.log, opts.limits);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  opts.log.info(
    { url: `http://${host}:${port}`, routes: [...Object.keys(opts.routes.files), ...Object.keys(opts.routes.dirs)] },
    'boot server listening',
  );
  return {
    url: `http://${host}:${port}`,
    port,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Downloads in flight would hold close() for as long as the squashfs takes.
        server.closeAllConnections();
      });
    },
  };
}
