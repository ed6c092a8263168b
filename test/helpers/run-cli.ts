/** Runs the CLI in-process with no serf (`--rpc-addr` on a closed port) and captures its output. */
import { runCli } from '../../agent/cli/program.js';

/** A runner that passes `flags()` (e.g. the test server's credentials, once known) before each argv. */
export function cliRunner(flags: () => readonly string[] = () => []) {
  return async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const out: string[] = [];
    const err: string[] = [];
    // --rpc-addr on a closed port: no serf here, so --nats (or the local default) is used.
    const code = await runCli(
      ['--rpc-addr', '127.0.0.1:1', ...flags(), ...argv],
      { out: (l) => void out.push(l), err: (l) => void err.push(l) },
      {},
    );
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
}
