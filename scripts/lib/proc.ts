/**
 * What /proc says about a process, for tests of privilege separation: who it runs as, its
 * capabilities, its command line and environment, its memory.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Identity and capabilities of a process, from /proc/PID/status. */
export interface ProcIdentity {
  /** Real, effective, saved and filesystem uid. */
  readonly uids: readonly number[];
  readonly gids: readonly number[];
  /** Supplementary groups. */
  readonly groups: readonly number[];
  /** Capability sets as hex masks. */
  readonly capEff: string;
  readonly capPrm: string;
  readonly capInh: string;
  readonly capAmb: string;
  /** Resident memory in KiB. */
  readonly rssKb: number;
}

/** Reads /proc/PID/status. */
export function procIdentity(pid: number): ProcIdentity {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  const nums = (name: string) => field(name).split(/\s+/).filter(Boolean).map(Number);
  return {
    uids: nums('Uid'),
    gids: nums('Gid'),
    groups: nums('Groups'),
    capEff: field('CapEff'),
    capPrm: field('CapPrm'),
    capInh: field('CapInh'),
    capAmb: field('CapAmb'),
    rssKb: Number(field('VmRSS').split(/\s+/)[0]),
  };
}

/** /proc/PID/cmdline and /proc/PID/environ, NULs as spaces and newlines. */
export function procArgsAndEnv(pid: number): { cmdline: string; environ: string } {
  return {
    cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '),
    environ: readFileSync(`/proc/${pid}/environ`, 'utf8').replace(/\0/g, '\n'),
  };
}

/** True when the process exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The uid of a system user, creating it (as the package's postinst does) when missing; needs root. */
export function ensureSystemUser(name: string): number {
  try {
    return Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name]);
    return Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  }
}
