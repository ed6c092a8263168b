/**
 * Commands on an open SSH connection: argv quoted for the remote POSIX shell (single quotes, so
 * nothing in an argument is ever code there), run with a timeout, their output kept as bytes and
 * decoded once, the exit status or signal reported as a shell would.
 */
import os from 'node:os';
import type { Readable } from 'node:stream';
import type { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';

/** What a remote command did; `code` is 128 + the signal's number when a signal killed it. */
export interface RemoteResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** One argument for a POSIX shell: single-quoted, an embedded `'` as `'\''`. */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new Error('a command argument cannot contain a NUL byte');
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** The command line for `argv` run as root by `user`. */
export function remoteCommand(argv: readonly string[], user: string): string {
  if (argv.length === 0) throw new Error('no command to run');
  return (user === 'root' ? argv : ['sudo', '-n', '--', ...argv]).map(shellQuote).join(' ');
}

/** Writes stdin to "$1" through a temp file in its directory, chmod "$2", then rename. */
export const PUT_SCRIPT = [
  'set -e',
  't=$(mktemp "$(dirname -- "$1")/.mammatus-put.XXXXXX")',
  `trap 'rm -f -- "$t"' EXIT`,
  'cat > "$t"',
  'chmod "$2" "$t"',
  'sync -- "$t" 2>/dev/null || true',
  'mv -f -- "$t" "$1"',
  'trap - EXIT',
].join('\n');

/** Runs one command line on an open connection; see `RemoteHost.exec`. */
export async function runRemote(
  ssh: NodeSSH,
  where: string,
  command: string,
  stdin: Readable | string | undefined,
  timeoutMs: number,
): Promise<RemoteResult> {
  const started = Date.now();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let channel: ClientChannel | undefined;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      channel?.signal('KILL');
      channel?.close();
      reject(new Error(`${where}: command timed out after ${timeoutMs} ms: ${command.slice(0, 200)}`));
    }, timeoutMs);
  });
  try {
    const r = await Promise.race([
      ssh.execCommand(command, {
        ...(stdin === undefined ? {} : { stdin }),
        noTrim: true,
        onChannel: (c) => (channel = c),
        // Kept as bytes and decoded once: a UTF-8 character may straddle two chunks.
        onStdout: (b) => out.push(b),
        onStderr: (b) => err.push(b),
      }),
      timedOut,
    ]);
    if (r.code === null && r.signal === null) throw new Error(`${where}: connection lost while running: ${command.slice(0, 200)}`);
    // ssh2 names the signal `SIG…`; the shell's convention for a killed command is 128 + its number.
    const signal =
      r.signal === null ? undefined : os.constants.signals[`SIG${r.signal.replace(/^SIG/, '')}` as keyof typeof os.constants.signals];
    const code = r.code ?? 128 + (signal ?? 0);
    return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}
