/** Entry point of the `mammatus` executable (bundled by esbuild into dist/mammatus.mjs). */
import { runCli } from './program.js';

const io = {
  out: (line: string) => void process.stdout.write(`${line}\n`),
  err: (line: string) => void process.stderr.write(`${line}\n`),
};

// A closed stdout (journald gone, `| head`) must end the process, not spin: EPIPE exits 75 (EX_TEMPFAIL).
process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 75 : 1));

runCli(process.argv.slice(2), io).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mammatus: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
