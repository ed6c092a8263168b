/**
 * `mammatus query NAME [PAYLOAD] [--tag K=V]... [--node NAME]... [--timeout D] [--identity FILE]
 * [--json]`, like `serf query`. The ask of a query that reveals addresses (`mammatus.leases`) is
 * signed with the operator's key (core/signed-event.ts); agents answer nothing else to it.
 */
import { queryNeedsSignature } from '../../core/signed-event.js';
import { connect, parseTimeoutFlag, type CliIo, type GlobalOptions } from './common.js';
import { sealAsOperator } from './operator-key.js';

/** Flags of the query command. */
export interface QueryOptions {
  tag?: Record<string, string>;
  node?: string[];
  timeout?: string;
  ack?: boolean;
  json?: boolean;
  identity?: string;
  /** The operator's ssh-agent socket and home (from the environment). */
  agentSocket?: string;
  home?: string;
}

/** Runs the command: prints acks and responses as they arrive, then totals. */
export async function queryCommand(
  g: GlobalOptions,
  name: string,
  payload: string | undefined,
  opts: QueryOptions,
  io: CliIo,
): Promise<number> {
  const timeoutMs = parseTimeoutFlag(opts.timeout);
  let ask: Buffer = Buffer.from(payload ?? '');
  if (queryNeedsSignature(name)) {
    const sealed = await sealAsOperator(name, ask, { ...opts, why: 'answers only asks signed by an operator' }, io);
    if (typeof sealed === 'number') return sealed;
    ask = sealed;
  }
  const client = await connect(g);
  try {
    const records = await client.query({
      name,
      payload: ask,
      filterTags: opts.tag,
      filterNodes: opts.node,
      requestAck: opts.ack !== false,
      timeoutMs,
    });
    if (!opts.json) io.out(`Query '${name}' dispatched`);
    const acks: string[] = [];
    const responses: Record<string, string> = {};
    for await (const r of records) {
      if (r.type === 'ack') {
        acks.push(r.from);
        if (!opts.json) io.out(`Ack from '${r.from}'`);
      } else {
        responses[r.from] = r.payload.toString('utf8');
        if (!opts.json) io.out(`Response from '${r.from}': ${responses[r.from]}`);
      }
    }
    if (opts.json) io.out(JSON.stringify({ acks, responses }, null, 2));
    else io.out(`Total Acks: ${acks.length}\nTotal Responses: ${Object.keys(responses).length}`);
    return 0;
  } finally {
    client.close();
  }
}
