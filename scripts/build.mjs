// Bundles the CLI (and daemon) into one ESM file that runs on Node 20 with no node_modules.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

const out = 'dist/mammatus.mjs';
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
