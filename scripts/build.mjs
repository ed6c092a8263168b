// Bundles the CLI (and daemon) into ESM that runs on Node 20 with no node_modules: an entry file
// and the chunks it loads when a command, a role or a hosted service is first used (a node loads
// only what it runs).
//   node scripts/build.mjs [--out FILE] [--version V] [--no-shebang]
// The entry is FILE (default dist/mammatus.mjs), the chunks are in `chunks/` beside it. The package
// build bundles into its staging tree with the package's version and without the shebang (the
// wrapper runs it with /usr/bin/node). Tests and the local cluster may be running from dist/ while
// it is rebuilt: chunks carry content hashes in their names, new ones are written beside the old,
// the entry is renamed into place last, and a chunk no build uses any more is removed only after a
// day, so a running agent can still load a role it takes later.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
const generatedSections = [];
const precompiledSections = {
  name: 'precompiled-sections',
  setup(b) {
    const { registry, sections } = JSON.parse(
      execFileSync(process.execPath, ['--import', 'tsx', 'scripts/precompile-sections.ts', compiler], {
        cwd: root,
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      }),
    );
    const byModule = new Map();
    for (const s of sections) byModule.set(path.join(root, s.module), [...(byModule.get(path.join(root, s.module)) ?? []), s]);
    const byName = new Map(sections.map((s) => [s.name, s]));
    generatedSections.push(...sections.map((s) => s.name));
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

const result = await build({
  metafile: true,
  write: false,
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
// Every section's check must be in the bundle: one left out would fail only when a node first reads it.
const notBundled = generatedSections.filter((name) => !(`generated-section:${name}` in result.metafile.inputs));
if (notBundled.length) throw new Error(`settings checks not bundled (their modules were not matched): ${notBundled.join(', ')}`);
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
// A use of the free identifier: not a member (`x.require`) and not the start of a string.
const uses = (code, name) => new RegExp(`(?<![\\w$.'"\`])${name}(?![\\w$])`).test(code);
const entry = path.resolve(out);
const written = new Set();
for (const file of result.outputFiles) {
  const code = file.text;
  const used = Object.entries(shims).filter(([name]) => uses(code, name));
  const text = [
    ...(shebang && file.path === entry ? ['#!/usr/bin/env node'] : []),
    ...used.map(([, [imp]]) => imp),
    ...used.map(([, [, decl]]) => decl),
    code,
  ].join('\n');
  mkdirSync(path.dirname(file.path), { recursive: true });
  // Temp file + rename: a process loading the file meanwhile sees the old one or the new one whole.
  const temp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(temp, text, { mode: file.path === entry && shebang ? 0o755 : 0o644 });
  if (file.path === entry) continue; // renamed last, once every chunk it imports is in place
  renameSync(temp, file.path);
  written.add(file.path);
}
renameSync(`${entry}.${process.pid}.tmp`, entry);
if (shebang) chmodSync(entry, 0o755);
const chunksDir = path.join(path.dirname(entry), 'chunks');
const DAY_MS = 24 * 60 * 60 * 1000;
for (const name of readdirSync(chunksDir)) {
  const file = path.join(chunksDir, name);
  if (!written.has(file) && Date.now() - statSync(file).mtimeMs > DAY_MS) rmSync(file, { force: true });
}
