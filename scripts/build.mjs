// Bundles the CLI (and daemon) into ESM that runs on Node 20 with no node_modules: an entry file
// and the chunks it loads when a command, a role or a hosted service is first used (a node loads
// only what it runs; `mammatus version` loads the entry alone).
//   node scripts/build.mjs [--out FILE] [--version V] [--no-shebang]
// The entry is FILE (default dist/mammatus.mjs), the chunks are in `chunks/` beside it. The package
// build bundles into its staging tree with the package's version and without the shebang (the
// wrapper runs it with /usr/bin/node), never over dist/, which tests and the local cluster may be
// running at that moment.
import { build } from 'esbuild';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const out = arg('--out') ?? 'dist/mammatus.mjs';
const shebang = !process.argv.includes('--no-shebang');
const version = arg('--version') ?? JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
const outdir = path.dirname(out);
// Chunks of an earlier build would pile up (their names carry content hashes).
rmSync(path.join(outdir, 'chunks'), { recursive: true, force: true });
await build({
  entryPoints: { [path.basename(out, '.mjs')]: 'agent/cli/bin.ts' },
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  define: { __MAMMATUS_VERSION__: JSON.stringify(version) },
  // Native accelerators stay out: msgpackr falls back to pure JS, so one bundle fits every arch.
  external: ['msgpackr-extract', 'cpu-features', '*.node'],
  banner: {
    js: [
      'import { createRequire as __cr } from "node:module"; import { fileURLToPath as __fu } from "node:url"; import { dirname as __dn } from "node:path";',
      'const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);',
    ].join('\n'),
  },
});
if (shebang) {
  writeFileSync(out, `#!/usr/bin/env node\n${readFileSync(out, 'utf8')}`);
  chmodSync(out, 0o755);
}
