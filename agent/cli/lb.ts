/**
 * `mammatus lb create|list|show|rm`: load balancers through the registry (src/lb/registry.ts). The
 * CLI only writes records; gateways watch the bucket and render their engine from it, resolving
 * targets to the instances and members they select at that moment. Writing takes a controller's
 * credentials (operators run these on a controller node); a gateway can only read. Exit codes as
 * the instance commands: 0, 1 failure or refusal (a taken name, a conflict), 2 usage error. A
 * record is built and checked before NATS is dialled, so bad input is exit 2 whatever the network.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { LbBalance, LbMode, LbTls, LoadBalancerRecord } from '../../core/lb-record.js';
import { LbConflictError, LbNotFoundError, LbRegistry, LbWithdrawError } from '../../src/lb/registry.js';
import {
  formatListen,
  formatTarget,
  LbRecordError,
  makeLoadBalancerRecord,
  parseHealth,
  parseListen,
  parseTargetSpec,
} from '../../src/lb/record.js';
import { errorMessage } from '../../core/errors.js';
import { openLbHealthBucket } from '../../src/lb/health.js';
import { healthJson, healthLines, healthSummary, loadHealth, reportsOf } from './lb-health.js';
import { formatTable, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { withNats } from './instance.js';

/** Flags every lb subcommand takes. */
export interface LbOptions {
  nats?: string;
  json?: boolean;
}

/** `create` flags (commander has already checked the choices of mode, tls and balance). */
export interface LbCreateOptions extends LbOptions {
  listen: string;
  mode: LbMode;
  host?: string[];
  path?: string;
  target?: string[];
  health?: string;
  tls?: LbTls;
  balance?: LbBalance;
}

/** Opens NATS and the lb registry, runs `body`, closes; maps registry errors to exit codes. */
export function withBalancers(
  g: GlobalOptions,
  opts: LbOptions,
  io: CliIo,
  body: (r: LbRegistry, nc: NatsConnection) => Promise<number>,
): Promise<number> {
  return withNats(g, opts.nats, io, async (nc) => {
    try {
      const registry = await LbRegistry.open(nc);
      // The gateways write target health there but may not create it: made beside the balancers.
      await openLbHealthBucket(nc, { create: true }).catch((err: unknown) =>
        io.err(`warning: cannot create the target health bucket: ${errorMessage(err)}`),
      );
      return await body(registry, nc);
    } catch (err) {
      if (err instanceof LbRecordError) throw new UsageError(err.message);
      if (err instanceof LbConflictError || err instanceof LbNotFoundError || err instanceof LbWithdrawError) {
        io.err(`error: ${err.message}`);
        return 1;
      }
      throw err;
    }
  });
}

/** Runs a flag parser; its refusal is a usage error (exit 2) naming the flag. */
function flag<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof LbRecordError) throw new UsageError(`--${name}: ${err.message.replace(/^[a-z_]+: /, '')}`);
    throw err;
  }
}

/** `lb create NAME --listen [ADDR:]PORT --mode http|tcp [--host H]… [--path P] --target SEL:PORT… …` */
export function createCommand(g: GlobalOptions, name: string, opts: LbCreateOptions, io: CliIo): Promise<number> {
  if (!opts.target?.length) throw new UsageError('--target is required (SELECTOR:PORT, repeatable)');
  const listen = flag('listen', () => parseListen(opts.listen));
  const targets = opts.target.map((t) => flag('target', () => parseTargetSpec(t)));
  const health = opts.health === undefined ? undefined : flag('health', () => parseHealth(opts.health!));
  let built: LoadBalancerRecord;
  try {
    built = makeLoadBalancerRecord(
      {
        name,
        listen,
        mode: opts.mode,
        hosts: opts.host ?? [],
        ...(opts.path !== undefined ? { path: opts.path } : {}),
        targets,
        ...(health ? { health } : {}),
        ...(opts.tls ? { tls: opts.tls } : {}),
        ...(opts.balance ? { balance: opts.balance } : {}),
      },
      new Date(),
    );
  } catch (err) {
    throw err instanceof LbRecordError ? new UsageError(err.message) : err;
  }
  return withBalancers(g, opts, io, async (registry) => {
    const record = await registry.add(built);
    io.out(opts.json ? JSON.stringify(record, null, 2) : `created ${name}: ${summary(record)}`);
    return 0;
  });
}

/** One line about a balancer: where it listens, for what, to what. */
function summary(r: LoadBalancerRecord): string {
  const n = r.targets.length;
  return `${r.mode}${r.tls === 'none' ? '' : `+tls ${r.tls}`} on ${formatListen(r.listen)} for ${hostsOf(r)}${r.path ?? ''}, ${n} target${n === 1 ? '' : 's'}`;
}

function hostsOf(r: LoadBalancerRecord): string {
  return r.hosts.length === 0 ? '*' : r.hosts.join(',');
}

/** `lb list` */
export function listCommand(g: GlobalOptions, opts: LbOptions, io: CliIo): Promise<number> {
  return withBalancers(g, opts, io, async (registry, nc) => {
    const records = await registry.list();
    const health = await loadHealth(nc);
    if (health.error) io.err(`warning: ${health.error}`);
    const now = new Date();
    if (opts.json) {
      io.out(
        JSON.stringify(
          records.map((r) => ({ ...r, target_health: healthJson(reportsOf(r.name, health.reports, now)) })),
          null,
          2,
        ),
      );
      return 0;
    }
    const rows = [['NAME', 'LISTEN', 'MODE', 'TLS', 'HOSTS', 'PATH', 'TARGETS', 'HEALTH']];
    for (const r of records) {
      const up = healthSummary(reportsOf(r.name, health.reports, now));
      rows.push([r.name, formatListen(r.listen), r.mode, r.tls, hostsOf(r), r.path ?? '-', String(r.targets.length), up]);
    }
    for (const line of formatTable(rows)) io.out(line);
    return 0;
  });
}

/** `lb show NAME` */
export function showCommand(g: GlobalOptions, name: string, opts: LbOptions, io: CliIo): Promise<number> {
  return withBalancers(g, opts, io, async (registry, nc) => {
    const r = await registry.get(name);
    const health = await loadHealth(nc);
    if (health.error) io.err(`warning: ${health.error}`);
    const reports = reportsOf(name, health.reports, new Date());
    if (opts.json) io.out(JSON.stringify({ ...r, target_health: healthJson(reports) }, null, 2));
    else for (const line of [...describe(r), ...healthLines(r, reports)]) io.out(line);
    return 0;
  });
}

function describe(r: LoadBalancerRecord): string[] {
  return [
    `name:      ${r.name}`,
    `listen:    ${formatListen(r.listen)}`,
    `mode:      ${r.mode}`,
    `tls:       ${r.tls}`,
    `hosts:     ${r.hosts.length === 0 ? '* (every name on its listener)' : r.hosts.join(', ')}`,
    `path:      ${r.path ?? '* (every path)'}`,
    `balance:   ${r.balance}`,
    `health:    ${r.health.kind === 'tcp' ? 'tcp connect' : `GET ${r.health.path}`}`,
    ...r.targets.map((t, i) => `${i === 0 ? 'targets:  ' : '          '} ${formatTarget(t)}`),
    `created:   ${r.created_at}`,
    `updated:   ${r.updated_at}`,
  ];
}

/** `lb rm NAME`; a malformed value under the name's key is removed too, with a warning. */
export function rmCommand(g: GlobalOptions, name: string, opts: LbOptions, io: CliIo): Promise<number> {
  return withBalancers(g, opts, io, async (registry) => {
    const removed = await registry.remove(name);
    if (removed.malformed) io.err(`warning: lb ${name} held a malformed value (${removed.malformed}); deleted it`);
    io.out(opts.json ? JSON.stringify(removed.record ?? null, null, 2) : `removed ${name}`);
    return 0;
  });
}
