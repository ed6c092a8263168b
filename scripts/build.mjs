// Bundles the CLI (and daemon) into ESM that runs on Node 20 with no node_modules: an entry file
// and the chunks it loads when a command, a role or a hosted service is first used (a node loads
// only what it runs; `mammatus version` loads the entry alone).
//   node scripts/build.mjs [--out FILE] [--version V] [--no-shebang]
// The entry is FILE (default dist/mammatus.mjs), the chunks are in `chunks/` beside it. The package
// build bundles into its staging tree with the package's version and without the shebang (the
// wrapper runs it with /usr/bin/node), never over dist/, which tests and the local cluster may be
// running at that moment.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const out = arg('--out') ?? 'dist/mammatus.mjs';
const shebang = !process.argv.includes('--no-shebang');
const version = arg('--version') ?? JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
const outdir = path.dirname(out);
const root = fileURLToPath(new URL('..', import.meta.url));

// Settings checks compiled now rather than by Ajv in every process (see core/section-compiler.ts):
// the compiler module becomes a registry, and each module that declares a section imports the
// generated check of its own section, so a process loads only the checks of what it runs.
const compiler = path.join(root, 'core', 'section-compiler.ts');
const precompiledSections = {
  name: 'precompiled-sections',
  setup(b) {
    const { registry, sections } = JSON.parse(
      execFileSync(process.execPath, ['--import', 'tsx', 'scripts/precompile-sections.ts', compiler], { cwd: root, encoding: 'utf8' }),
    );
    const byModule = new Map();
    for (const s of sections) byModule.set(path.join(root, s.module), [...(byModule.get(path.join(root, s.module)) ?? []), s]);
    const byName = new Map(sections.map((s) => [s.name, s]));
    b.onLoad({ filter: /[\\/]core[\\/]section-compiler\.ts$/ }, () => ({ contents: registry, loader: 'js', resolveDir: root }));
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      const own = byModule.get(args.path);
      if (!own) return undefined;
      const imports = own.map((s) => `import ${JSON.stringify(`generated-section:${s.name}`)};`).join('\n');
      return { contents: `${readFileSync(args.path, 'utf8')}\n${imports}\n`, loader: 'ts' };
    });
    b.onResolve({ filter: /^generated-section:/ }, (args) => ({
      path: args.path.slice('generated-section:'.length),
      namespace: 'generated-section',
    }));
    b.onLoad({ filter: /.*/, namespace: 'generated-section' }, (args) => ({
      contents: byName.get(args.path).source,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

// Chunks of an earlier build would pile up (their names carry content hashes).
rmSync(path.join(outdir, 'chunks'), { recursive: true, force: true });
const result = await build({
  metafile: true,
  entryPoints: { [path.basename(out, '.mjs')]: 'agent/cli/bin.ts' },
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  bundle: true,
  plugins: [precompiledSections],
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  define: { __MAMMATUS_VERSION__: JSON.stringify(version) },
  // Native accelerators stay out: msgpackr falls back to pure JS, so one bundle fits every arch.
  external: ['msgpackr-extract', 'cpu-features', '*.node'],
});
// CommonJS dependencies expect `require`, `__filename` and `__dirname`, which ESM lacks. Each file
// gets the ones it uses and no more: createRequire in every chunk meant dozens of module-path
// computations at start, enough to make V8 compile node's path code with its optimizing compiler
// (paging in ~4 MB of node's binary in an idle agent).
const shims = {
  require: ['import { createRequire as __cr } from "node:module";', 'const require = __cr(import.meta.url);'],
  __filename: ['import { fileURLToPath as __fu } from "node:url";', 'const __filename = __fu(import.meta.url);'],
  __dirname: [
    'import { dirname as __dn } from "node:path"; import { fileURLToPath as __fu2 } from "node:url";',
    'const __dirname = __dn(__fu2(import.meta.url));',
  ],
};
for (const file of Object.keys(result.metafile.outputs)) {
  const code = readFileSync(file, 'utf8');
  const used = Object.entries(shims).filter(([name]) => new RegExp(`\\b${name}\\b`).test(code));
  if (used.length) writeFileSync(file, [...used.map(([, [imp]]) => imp), ...used.map(([, [, decl]]) => decl), code].join('\n'));
}
if (shebang) {
  writeFileSync(out, `#!/usr/bin/env node\n${readFileSync(out, 'utf8')}`);
  chmodSync(out, 0o755);
}
