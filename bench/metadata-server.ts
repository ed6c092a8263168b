/**
 * Child process of bench/metadata.ts, so that no server it measures shares an event loop with the
 * benchmark driver. bench/metadata.ts bundles it with esbuild into its temp dir and runs the bundle
 * with plain node (as dist/mammatus.mjs runs; under tsx fastify serves ~20 % fewer requests/s).
 * Three modes:
 *
 *   node metadata-server.mjs service NATS_URL LISTEN
 *       the metadata service from the current sources (`startMetadataService`, no vendor-data,
 *       silent logger); bench/metadata.ts runs dist/mammatus.mjs instead unless BENCH_MD_FROM=source
 *   node metadata-server.mjs bare LISTEN ROOT URLPATH=CONTENT-TYPE...
 *       a bare fastify app (same fastify, same options as the service) that answers each URLPATH
 *       with the bytes of ROOT/URLPATH read once at start: the floor of fastify on this machine
 *   node metadata-server.mjs http LISTEN ROOT URLPATH=CONTENT-TYPE...
 *       the same with node:http and no framework: the floor of Node's HTTP server
 *
 * Prints one line `listening http://HOST:PORT` on stdout when it accepts connections; stops on
 * SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Fastify from 'fastify';
import pino from 'pino';
import { parseMetadataSettings } from '../src/metadata/config.js';
import { startMetadataService } from '../src/metadata/service.js';
import { readCredentials } from '../core/trust.js';
import { splitHostPort } from '../core/net.js';
import { untilSignal } from '../core/signals.js';

async function service(nats: string, listen: string): Promise<void> {
  const settings = parseMetadataSettings({ nats, listen });
  // The credentials the bench gives its server (MAMMATUS_CREDENTIALS), as the CLI reads them.
  const file = process.env.MAMMATUS_CREDENTIALS;
  const credentials = file ? await readCredentials(file) : undefined;
  const svc = await startMetadataService({ settings, vendorData: async () => '', log: pino({ level: 'silent' }), credentials });
  console.log(`listening ${svc.url}`);
  await untilSignal();
  await svc.stop();
}

/** The answers of `bare` and `http`: URL path → body and Content-Type. */
function answers(root: string, routes: string[]): Map<string, { body: string | Buffer; type: string }> {
  const map = new Map<string, { body: string | Buffer; type: string }>();
  for (const spec of routes) {
    const eq = spec.indexOf('=');
    const url = spec.slice(0, eq);
    const type = spec.slice(eq + 1);
    // The service sends text leaves as strings and byte leaves as Buffers; so do these.
    const bytes = readFileSync(path.join(root, url));
    map.set(url, { body: type.startsWith('text/') ? bytes.toString('utf8') : bytes, type });
  }
  return map;
}

async function plainHttp(listen: string, root: string, routes: string[]): Promise<void> {
  const map = answers(root, routes);
  const server = http.createServer((req, res) => {
    const a = map.get(req.url ?? '');
    if (!a) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': a.type, 'content-length': Buffer.byteLength(a.body) });
    res.end(a.body);
  });
  const { host, port } = splitHostPort(listen, { allowPortZero: true });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  console.log(`listening http://${host}:${port}`);
  await untilSignal();
  await new Promise((resolve) => server.close(resolve));
}

async function bare(listen: string, root: string, routes: string[]): Promise<void> {
  // The options of buildMetadataApp, so the difference to the service is its own request handling.
  const app = Fastify({ logger: false, bodyLimit: 1024, caseSensitive: true, return503OnClosing: true });
  for (const [url, { body, type }] of answers(root, routes)) app.get(url, (_req, reply) => reply.type(type).send(body));
  const { host, port } = splitHostPort(listen, { allowPortZero: true });
  await app.listen({ host, port });
  console.log(`listening http://${host}:${port}`);
  await untilSignal();
  await app.close();
}

const [mode, ...args] = process.argv.slice(2);
const run =
  mode === 'service' && args.length === 2
    ? service(args[0], args[1])
    : (mode === 'bare' || mode === 'http') && args.length >= 3
      ? (mode === 'bare' ? bare : plainHttp)(args[0], args[1], args.slice(2))
      : undefined;
if (!run) {
  console.error('usage: metadata-server.mjs service NATS_URL HOST:PORT | bare|http HOST:PORT ROOT URLPATH=TYPE...');
  process.exit(2);
}
run.then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
