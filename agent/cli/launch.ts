/**
 * `mammatus instance launch|start|stop|delete`: container instances, driven through the registry.
 * The CLI only writes the record (its node, image, MAC and recorded state); the compute role on
 * that node follows the registry and brings LXD to it, then writes the instance's address back.
 * So these commands work from any node that reaches the controllers' NATS, and a compute node that
 * was down catches up when it returns. `launch` picks the node over Serf (`placement.ts`) unless
 * `--node` names one, which it then checks.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { normalizeMac, type InstanceState } from '../../core/instance-record.js';
import { IMAGE_TAG } from '../../roles/compute/plan.js';
import type { InstanceRegistry } from '../../src/registry/registry.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import { parseTimeoutFlag, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { warnUnserved, withRegistry, type InstanceOptions } from './instance.js';
import { parseVolumeFlags, prepareVolumes } from './launch-volumes.js';
import { chooseNode, surveyCapacity, unfitReason, type CapacitySurvey } from './placement.js';
import { errorMessage } from '../../core/errors.js';

/** `launch` flags. */
export interface LaunchOptions extends InstanceOptions {
  image: string;
  node?: string;
  mac?: string;
  userData?: string;
  sshKey?: string[];
  /** Wait until the node reports the instance running with an IPv4 address (Go duration, or true = 2m). */
  wait?: string | boolean;
  /** Volumes to attach, `NAME[:PATH]` (launch-volumes.ts). */
  volume?: string[];
  /** The compute node's initiator IQN for them (default: its Serf tag `iscsi`). */
  initiator?: string;
  /** The record's tags besides `image` (which `--image` sets). */
  tag?: Record<string, string>;
}

/** A random locally administered unicast MAC (`02:…`): never a vendor's, never multicast. */
export function randomMac(bytes: Uint8Array = randomBytes(5)): string {
  return ['02', ...[...bytes.slice(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** `instance launch NAME --image ALIAS [--node NODE] …`: records the instance, state `running`. */
export async function launchCommand(g: GlobalOptions, name: string, opts: LaunchOptions, io: CliIo): Promise<number> {
  if (!opts.image) throw new UsageError('--image is required (an image alias on the compute node)');
  // The compute role reads the image from this tag: a second value would launch another image than --image says.
  if (opts.tag && IMAGE_TAG in opts.tag) throw new UsageError(`--tag ${IMAGE_TAG}: set by --image`);
  let mac: string;
  try {
    mac = opts.mac ? normalizeMac(opts.mac) : randomMac();
  } catch (err) {
    throw new UsageError(`--mac: ${errorMessage(err)}`);
  }
  const sshKeys = (await Promise.all((opts.sshKey ?? []).map((f) => readInput(f, '--ssh-key', 'utf8')))).flatMap((text) =>
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
  const userData = opts.userData ? Buffer.from(await readInput(opts.userData, '--user-data')) : undefined;
  const volumeSpecs = parseVolumeFlags(opts.volume, opts.initiator);
  let survey: CapacitySurvey | undefined;
  if (opts.node) {
    const why = await checkNamedNode(g, opts.node, io);
    if (why) {
      io.err(`error: cannot launch on ${opts.node}: ${why}`);
      return 1;
    }
  } else {
    try {
      survey = await surveyCapacity(g);
    } catch (err) {
      io.err(`error: choosing a compute node needs the local serf agent (${errorMessage(err)}); or name one with --node`);
      return 1;
    }
  }
  return withRegistry(g, opts, io, async (registry, nc) => {
    let node = opts.node;
    if (survey) {
      const placed = new Map<string, number>();
      for (const r of await registry.list()) if (r.node && r.state !== 'deleting') placed.set(r.node, (placed.get(r.node) ?? 0) + 1);
      const chosen = chooseNode(survey, placed);
      if ('error' in chosen) {
        io.err(`error: ${chosen.error}`);
        return 1;
      }
      node = chosen.node;
    }
    const volumes = await prepareVolumes(g, nc, name, node ?? '', volumeSpecs, opts.initiator);
    if ('error' in volumes) {
      io.err(`error: ${volumes.error}`);
      return 1;
    }
    const registered = await registry.register({
      name,
      node,
      macs: [mac],
      ssh_keys: sshKeys,
      ...(userData ? { user_data: userData } : {}),
      tags: { ...opts.tag, [IMAGE_TAG]: opts.image },
    });
    // Registered first, running second: a record is only ever created as `registered`.
    const record = await registry.update(registered.id, (r) => ({ ...r, state: 'running' }));
    try {
      const attached = await volumes.attach();
      if (attached.length) io.err(`attaching ${attached.join(', ')} to ${record.name}`);
    } catch (err) {
      io.err(`error: ${record.name} is recorded, but attaching its volumes failed: ${errorMessage(err)} (mammatus volume attach)`);
      return 1;
    }
    await warnUnserved(g, record, io);
    if (!opts.wait) {
      io.out(opts.json ? JSON.stringify(record, null, 2) : `launching ${record.name} (${record.id}) on ${node}, MAC ${record.macs[0]}`);
      return 0;
    }
    io.err(`launching ${record.name} (${record.id}) on ${node}, MAC ${record.macs[0]}; waiting for it to run`);
    const waitMs = opts.wait === true ? DEFAULT_WAIT_MS : parseTimeoutFlag(opts.wait);
    const outcome = await waitRunning(registry, record.id, waitMs);
    if ('error' in outcome) {
      io.err(`error: ${record.name}: ${outcome.error}`);
      return 1;
    }
    io.out(
      opts.json
        ? JSON.stringify(outcome.record, null, 2)
        : `${record.name} (${record.id}) runs on ${node} at ${outcome.record.ips.join(', ')}`,
    );
    return 0;
  });
}

/** How long `--wait` without a value waits: a first create unpacks the image (seconds to a minute). */
const DEFAULT_WAIT_MS = 120_000;

/**
 * Polls the record until its node reports it running with an IPv4 address, reports an error, or
 * the time is up. Polling the registry (not LXD) is what works from any node.
 */
async function waitRunning(
  registry: InstanceRegistry,
  id: string,
  timeoutMs: number,
): Promise<{ record: InstanceRecord } | { error: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await registry.find(id);
    if (!r) return { error: 'its record was removed while waiting' };
    if (r.observed?.status === 'error') return { error: r.observed.error ?? 'its node reports an error' };
    if (r.observed?.status === 'running' && r.ips.some((ip) => !ip.includes(':'))) return { record: r };
    if (Date.now() > deadline)
      return {
        error: `not running with an address after ${Math.round(timeoutMs / 1000)} s (status: ${r.observed?.status ?? 'pending'}; see \`mammatus instance show ${r.name}\`)`,
      };
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** How long `launch --node N` waits for N's capacity answer before recording the launch anyway. */
const NAMED_NODE_TIMEOUT_MS = 2000;

/**
 * Why the named node cannot take the instance, or undefined. A node that is not an alive compute
 * member, or says it is not ready, is refused. Without a local serf agent, or when the node's
 * agent does not answer, the launch is recorded anyway (with a warning): the node acts on it when
 * it follows the registry again.
 */
async function checkNamedNode(g: GlobalOptions, node: string, io: CliIo): Promise<string | undefined> {
  let survey: CapacitySurvey;
  try {
    // A short wait: one node on the LAN answers in milliseconds, and no answer is only a warning.
    survey = await surveyCapacity(g, { node, timeoutMs: NAMED_NODE_TIMEOUT_MS });
  } catch (err) {
    io.err(`warning: cannot check ${node} with serf (${errorMessage(err)}); recording the launch anyway`);
    return undefined;
  }
  const why = unfitReason(survey.members[0], survey.answers.get(node));
  if (why === 'did not answer') {
    io.err(`warning: ${node} did not answer; it creates the instance once its agent follows the registry`);
    return undefined;
  }
  return why;
}

/** `instance start|stop|delete NAME`: sets the recorded state the compute node acts on. */
export function setStateCommand(
  g: GlobalOptions,
  name: string,
  state: Extract<InstanceState, 'running' | 'stopped' | 'deleting'>,
  opts: InstanceOptions,
  io: CliIo,
): Promise<number> {
  return withRegistry(g, opts, io, async (registry) => {
    const current = await registry.get(name);
    if (!current.node) {
      io.err(
        `error: ${current.name} runs on no compute node (a PXE host?); ${state === 'deleting' ? 'use `mammatus instance rm`' : 'nothing would act on it'}`,
      );
      return 1;
    }
    const record = await registry.update(current.id, (r) => ({ ...r, state }));
    const verb = { running: 'starting', stopped: 'stopping', deleting: 'deleting' }[state];
    io.out(opts.json ? JSON.stringify(record, null, 2) : `${verb} ${record.name} (${record.id}) on ${record.node}`);
    return 0;
  });
}

function readInput(file: string, flag: string): Promise<Buffer>;
function readInput(file: string, flag: string, encoding: 'utf8'): Promise<string>;
async function readInput(file: string, flag: string, encoding?: 'utf8'): Promise<Buffer | string> {
  try {
    return encoding ? await readFile(file, encoding) : await readFile(file);
  } catch (err) {
    throw new UsageError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(err)}`);
  }
}
