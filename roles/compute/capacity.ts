/**
 * `mammatus.capacity`: a compute node answers whether it can take instances now and how loaded it
 * is, so `mammatus instance launch` without `--node` can pick one; other nodes stay silent. The
 * answer is one small JSON object (well under Serf's response limit):
 *
 * ```json
 * {"node":"cn1","ready":true,"cpus":4,"mem_total_mb":7853,"mem_available_mb":5120,"load1":0.42,"instances":3,"running":2}
 * ```
 */
import os from 'node:os';

/** Query name, as documented in docs/serf.md. */
export const CAPACITY_QUERY = 'mammatus.capacity';

/** One compute node's answer. */
export interface CapacityAnswer {
  node: string;
  /** LXD is set up and the registry followed: an instance recorded for this node will be created. */
  ready: boolean;
  /** Why not ready (shortened). */
  reason?: string;
  cpus: number;
  mem_total_mb: number;
  /** What the kernel could give new processes without swapping (MemAvailable). */
  mem_available_mb: number;
  load1: number;
  /** Containers in LXD (managed or not) and how many run. */
  instances: number;
  running: number;
}

/** The machine's side of the answer; injected so the handler is testable. */
export interface HostFacts {
  readonly cpus: number;
  readonly memTotalBytes: number;
  readonly memAvailableBytes: number;
  readonly load1: number;
}

/** This machine's facts. Node's `os.freemem()` is the kernel's MemAvailable on Linux (libuv ≥ 1.45). */
export function hostFacts(): HostFacts {
  return { cpus: os.availableParallelism(), memTotalBytes: os.totalmem(), memAvailableBytes: os.freemem(), load1: os.loadavg()[0] ?? 0 };
}

const MB = 1024 * 1024;

/** Builds the answer from the compute role's facts (undefined: the role reports nothing yet). Pure. */
export function buildCapacity(node: string, facts: Readonly<Record<string, unknown>> | undefined, host: HostFacts): CapacityAnswer {
  const num = (k: string) => (typeof facts?.[k] === 'number' ? facts[k] : 0);
  const ready = facts?.ready === true;
  const reason = typeof facts?.reason === 'string' ? facts.reason : 'the compute role reports nothing yet';
  return {
    node,
    ready,
    ...(ready ? {} : { reason: reason.length > 160 ? `${reason.slice(0, 159)}…` : reason }),
    cpus: host.cpus,
    mem_total_mb: Math.round(host.memTotalBytes / MB),
    mem_available_mb: Math.round(host.memAvailableBytes / MB),
    load1: Math.round(host.load1 * 100) / 100,
    instances: num('instances'),
    running: num('running'),
  };
}
