/**
 * A static file server on 127.0.0.1 for the package tests: serves a flat apt repository (or a key)
 * from a directory, records every request path, and closes its connections when asked.
 */
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

/** A running server; `aliases` serve the same tree under a prefix. */
export interface RepoServer {
  readonly port: number;
  readonly requests: string[];
  close(): Promise<void>;
}

/** Serves the files under `dir` (GET and HEAD only; anything else or outside `dir` is 404). */
export function serveRepo(dir: string, aliases: readonly string[] = []): Promise<RepoServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    let url = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(url);
    for (const a of aliases) if (url.startsWith(a)) url = '/' + url.slice(a.length);
    const file = path.join(dir, path.normalize(url));
    let size = -1;
    try {
      if (file.startsWith(dir + path.sep) && statSync(file).isFile()) size = statSync(file).size;
    } catch {
      size = -1;
    }
    if (size < 0 || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    res.end(req.method === 'HEAD' ? undefined : readFileSync(file));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        port,
        requests,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
