// Bundles the CLI (and daemon) into one ESM file that runs on Node 20 with no node_modules.
import { build } from 'esbuild';
import { chmodSync, readFileSync } from 'node:fs';

//   node scripts/build.mjs [--out FILE] [--version V]
// The package build bundles into its staging tree with the package's version, never over
// dist/mammatus.mjs, which tests and the local cluster may be running at that moment.
const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const out = arg('--out') ?? 'dist/mammatus.mjs';
const version = arg('--version') ?? JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
await build({
  entryPoints: ['agent/cli/bin.ts'],
  outfile: out,
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
      '#!/usr/bin/env node',
      'import { createRequire as __cr } from "node:module"; import { fileURLToPath as __fu } from "node:url"; import { dirname as __dn } from "node:path";',
      'const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);',
    ].join('\n'),
  },
});
chmodSync(out, 0o755);
