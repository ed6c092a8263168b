// Builds dist/mammatus-agent_<version>_all.deb from the bundle and packaging/deb/, by hand with
// dpkg-deb (no source package). Same inputs, same bytes: file times are clamped to the changelog's
// date (SOURCE_DATE_EPOCH), owners are root, compression is deterministic.
//   node scripts/package.mjs [--version V] [--out DIR]
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const version = arg('--version') ?? pkg.version;
const out = path.resolve(arg('--out') ?? path.join(root, 'dist'));
const src = path.join(root, 'packaging/deb');
const stage = path.join(out, `stage-${version}`);

if (!/^[0-9][A-Za-z0-9.+~-]*$/.test(version)) throw new Error(`not a Debian version: ${version}`);

// The changelog's newest entry names the version; a build of another version (an upgrade test,
// a snapshot) gets its own entry on top, dated like the entry below it so the build stays reproducible.
let changelog = readFileSync(path.join(src, 'changelog'), 'utf8');
const date = /^ -- .+?> {2}(.+)$/m.exec(changelog)[1];
if (!changelog.startsWith(`mammatus-agent (${version})`)) {
  changelog = `mammatus-agent (${version}) unstable; urgency=medium\n\n  * Build of version ${version}.\n\n -- Mammatus Builders <builders@mammatus.invalid>  ${date}\n\n${changelog}`;
}
const epoch = String(Math.floor(Date.parse(date) / 1000));

rmSync(stage, { recursive: true, force: true });
const put = (rel, content, mode) => {
  const file = path.join(stage, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  if (Buffer.isBuffer(content) || typeof content === 'string') writeFileSync(file, content);
  else copyFileSync(content.from, file);
  chmodSync(file, mode);
};
const gz = (text) => gzipSync(Buffer.from(text), { level: 9 }); // node's gzip writes no name and mtime 0
// Bundled straight into the staging tree with this package's version: the entry and its chunks
// (usr/lib/mammatus-agent/chunks/). The wrapper runs it with /usr/bin/node: as a non-executable
// module it must not start with a shebang.
const bundle = path.join(stage, 'usr/lib/mammatus-agent/mammatus.mjs');
mkdirSync(path.dirname(bundle), { recursive: true });
execFileSync('node', [path.join(root, 'scripts/build.mjs'), '--out', bundle, '--version', version, '--no-shebang'], {
  stdio: 'inherit',
  cwd: root,
});
for (const name of readdirSync(path.join(stage, 'usr/lib/mammatus-agent/chunks')))
  chmodSync(path.join(stage, 'usr/lib/mammatus-agent/chunks', name), 0o644);
chmodSync(bundle, 0o644);
put('usr/bin/mammatus', { from: path.join(src, 'mammatus') }, 0o755);
put('usr/lib/systemd/system/mammatus-agent.service', { from: path.join(src, 'mammatus-agent.service') }, 0o644);
put('usr/share/doc/mammatus-agent/copyright', { from: path.join(src, 'copyright') }, 0o644);
put('usr/share/doc/mammatus-agent/changelog.gz', gz(changelog), 0o644);
put('usr/share/man/man8/mammatus.8.gz', gz(readFileSync(path.join(src, 'mammatus.8'))), 0o644);
put('usr/share/lintian/overrides/mammatus-agent', { from: path.join(src, 'lintian-overrides') }, 0o644);
// The cloud-init files: vendor-data templates the metadata service reads, and the bootstrap files
// operators copy into images (docs/metadata.md). Data, not executables: mode 0644 throughout.
const cloudInit = path.join(root, 'cloud-init');
const putTree = (dir, rel) => {
  for (const name of readdirSync(dir).sort()) {
    const from = path.join(dir, name);
    if (statSync(from).isDirectory()) putTree(from, `${rel}/${name}`);
    else if (name !== 'README.md') put(`${rel}/${name}`, { from }, 0o644); // docs live in docs/
  }
};
putTree(cloudInit, 'usr/share/mammatus/cloud-init');
mkdirSync(path.join(stage, 'etc/mammatus/agent.d'), { recursive: true });
mkdirSync(path.join(stage, 'var/lib/mammatus'), { recursive: true });
for (const s of ['postinst', 'prerm', 'postrm']) put(`DEBIAN/${s}`, { from: path.join(src, s) }, 0o755);

// md5sums and Installed-Size cover everything but DEBIAN/, in sorted order.
const files = [];
let bytes = 0;
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    const rel = path.relative(stage, full);
    if (rel === 'DEBIAN') continue;
    const st = statSync(full);
    if (st.isDirectory()) {
      chmodSync(full, 0o755);
      bytes += 1024;
      walk(full);
    } else {
      files.push(rel);
      bytes += Math.ceil(st.size / 1024) * 1024;
    }
  }
};
chmodSync(stage, 0o755);
walk(stage);
// dpkg-deb only clamps times newer than SOURCE_DATE_EPOCH; set them all, so a build machine whose
// clock is behind the changelog date (a board without RTC) makes the same bytes too.
const stamp = (dir) => {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) stamp(full);
    utimesSync(full, Number(epoch), Number(epoch));
  }
  utimesSync(dir, Number(epoch), Number(epoch));
};
const md5 = files
  .map(
    (f) =>
      `${createHash('md5')
        .update(readFileSync(path.join(stage, f)))
        .digest('hex')}  ${f}\n`,
  )
  .join('');
put('DEBIAN/md5sums', md5, 0o644);
const control = readFileSync(path.join(src, 'control.in'), 'utf8')
  .replace('@VERSION@', version)
  .replace('@INSTALLED_SIZE@', String(Math.ceil(bytes / 1024)));
put('DEBIAN/control', control, 0o644);
chmodSync(path.join(stage, 'DEBIAN'), 0o755);

stamp(stage);

const deb = path.join(out, `mammatus-agent_${version}_all.deb`);
execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, deb], {
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, SOURCE_DATE_EPOCH: epoch },
});
rmSync(stage, { recursive: true, force: true });
console.log(`${deb} (${statSync(deb).size} bytes)`);
