/** `mammatus event NAME [PAYLOAD] [--coalesce]`: fires a user event, like `serf event`. */
import { connect, type CliIo, type GlobalOptions } from './common.js';

/** Runs the command. Coalescing is off by default: it would drop earlier events of the same name. */
export async function eventCommand(
  g: GlobalOptions,
  name: string,
  payload: string | undefined,
  opts: { coalesce?: boolean },
  io: CliIo,
): Promise<number> {
  const client = await connect(g);
  try {
    await client.event(name, Buffer.from(payload ?? ''), Boolean(opts.coalesce));
    io.out(`Event '${name}' dispatched! Coalescing enabled: ${Boolean(opts.coalesce)}`);
    return 0;
  } finally {
    client.close();
  }
}
