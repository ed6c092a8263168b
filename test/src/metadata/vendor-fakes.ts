/**
 * A sandbox for running vendor-data parts with a real shell: a temporary MAMMATUS_ROOT, and a PATH
 * made of fake apt-get, apt-cache, systemctl and curl (which record their argv in a log) plus links
 * to just the real tools the parts need. Nothing else from the host is reachable, so a host that
 * happens to have consul or curl installed cannot change the outcome.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Real tools a part may run (besides shell builtins). */
const REAL_TOOLS = [
  'cat',
  'chgrp',
  'chmod',
  'cmp',
  'cut',
  'dirname',
  'getent',
  'head',
  'mkdir',
  'mktemp',
  'mv',
  'rm',
  'sed',
  'sha256sum',
  'stat',
];

// Each fake appends "<name> <argv…>" to $FAKE_LOG.
const RECORD =
  'printf \'%s\' "$(basename "$0")" >>"$FAKE_LOG"; for a in "$@"; do printf \' %s\' "$a" >>"$FAKE_LOG"; done; echo >>"$FAKE_LOG"';

const FAKES: Readonly<Record<string, string>> = {
  // install creates a stub command named after each package (consul, vault, telegraf).
  'apt-get': `${RECORD}
if [ "$1" = install ]; then
  for a in "$@"; do case $a in -*|install|Dpkg*) ;; *) printf '#!/bin/sh\\nexit 0\\n' >"$FAKE_BIN/$a"; chmod +x "$FAKE_BIN/$a" ;; esac; done
fi
exit \${FAKE_APT_GET_EXIT:-0}`,
  // Knows the packages listed in $FAKE_APT_KNOWS.
  'apt-cache': `${RECORD}
for p in \${FAKE_APT_KNOWS:-}; do [ "$2" = "$p" ] && exit 0; done
echo "E: No packages found" >&2
exit 100`,
  systemctl: `${RECORD}
exit 0`,
  // Records the request headers it reads on stdin (-H @-) and answers like Vault's unwrap.
  curl: `${RECORD}
cat >>"$FAKE_STDIN"
[ -n "\${FAKE_CURL_FAIL:-}" ] && { echo "curl: (22) The requested URL returned error: 400" >&2; exit 22; }
printf '{"request_id":"r1","lease_id":"","renewable":false,"lease_duration":0,"data":{"secret_id":"%s","secret_id_accessor":"acc-1","secret_id_num_uses":1,"secret_id_ttl":600},"wrap_info":null,"warnings":null,"auth":null}\\n' "$FAKE_SECRET_ID"`,
};

/** One sandbox; `cleanup()` removes it. */
export interface Sandbox {
  readonly dir: string;
  /** MAMMATUS_ROOT of the runs. */
  readonly root: string;
  /** The fake tools and the stubs apt-get installs. */
  readonly bin: string;
  /** Writes `script` to a file and runs it with `shell` (an absolute path); never rejects. */
  run(shell: string, script: string, env?: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Recorded calls, one `name argv…` string each, since the last `clearCalls()`. */
  calls(): string[];
  clearCalls(): void;
  /** What curl read on stdin. */
  curlStdin(): string;
  /** Makes `$ROOT/run/systemd/system` exist, so the parts believe systemd runs. */
  bootSystemd(): void;
  cleanup(): void;
}

/** The secret_id the fake curl "unwraps". */
export const FAKE_SECRET_ID = '6f1c6a52-8d1e-4c1b-9a55-0a6b3e4c2d11';

/** Creates a sandbox in a new temporary directory. */
export function createSandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'mammatus-vendor-'));
  const root = join(dir, 'root');
  const bin = join(dir, 'bin');
  const log = join(dir, 'calls.log');
  const stdin = join(dir, 'curl.stdin');
  mkdirSync(root);
  mkdirSync(bin);
  writeFileSync(log, '');
  writeFileSync(stdin, '');
  for (const [name, body] of Object.entries(FAKES)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  const tools = join(dir, 'tools');
  mkdirSync(tools);
  for (const tool of [...REAL_TOOLS, 'basename', 'sh']) {
    const real = ['/usr/bin', '/bin'].map((d) => join(d, tool)).find((p) => existsSync(p));
    if (!real) throw new Error(`the vendor-data tests need ${tool}`);
    symlinkSync(real, join(tools, tool));
  }
  return {
    dir,
    root,
    bin,
    run: (shell, script, env = {}) =>
      new Promise((resolve) => {
        const file = join(dir, 'part.sh');
        writeFileSync(file, script, { mode: 0o700 });
        execFile(
          shell,
          [file],
          {
            env: {
              PATH: `${bin}:${tools}`,
              MAMMATUS_ROOT: root,
              FAKE_LOG: log,
              FAKE_STDIN: stdin,
              FAKE_BIN: bin,
              FAKE_SECRET_ID,
              LC_ALL: 'C.UTF-8',
              ...env,
            },
            timeout: 20_000,
          },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
            resolve({ code, stdout, stderr });
          },
        );
      }),
    calls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
    clearCalls: () => writeFileSync(log, ''),
    curlStdin: () => readFileSync(stdin, 'utf8'),
    bootSystemd: () => mkdirSync(join(root, 'run', 'systemd', 'system'), { recursive: true }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
