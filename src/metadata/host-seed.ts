/**
 * The NoCloud seed of a planned host (issue 19): its meta-data names it (instance id, hostname), its
 * user-data is the node bootstrap in join mode (node-bootstrap.ts): the cluster apt repository on
 * the gateway's boot server with its key pinned by fingerprint, `serf` and `mammatus-agent`, the
 * Serf role tag, the one-time join secret and `mammatus node join`, and the install to disk when the
 * host has one. Which secret goes in is decided here too: none once the host has joined, none that
 * expired or is bound to another MAC. Pure.
 */
import type { HostPlan } from '../../core/host-record.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import type { JoinEntry } from '../hosts/joins.js';
import { renderNodeBootstrap } from './node-bootstrap.js';

/** `metadata.hosts`: where a planned host gets its packages, checked (config.ts). */
export interface HostSeedSettings {
  /** The cluster's flat apt repository on the gateway's boot server, e.g. `http://10.88.0.1:8777/apt/`. */
  readonly aptUrl: string;
  /** The repository key's URL; default `<aptUrl>mammatus-archive-keyring.gpg` (what repo-build.sh writes). */
  readonly aptKeyUrl: string;
  /** The key's fingerprint; required for a plain http:// key URL (the host checks the key against it). */
  readonly aptKeyFingerprint?: string;
}

/** A record that is a planned host. */
export type HostRecord = InstanceRecord & { readonly host: HostPlan };

/**
 * The secret a host's seed may carry: the stored one, unless the host has joined since it was made
 * (a seed read after the join must not hold a secret, even one that is spent), it expired, or it is
 * bound to a MAC the record no longer has.
 */
export function seedSecret(record: HostRecord, entry: JoinEntry | undefined, now: Date): string | undefined {
  if (!entry || record.host.progress.joined) return undefined;
  if (now.getTime() > Date.parse(entry.expires_at)) return undefined;
  return record.macs.includes(entry.mac) ? entry.secret : undefined;
}

/**
 * The user-data of a planned host.
 *
 * @throws SettingsError when the settings cannot make a bootstrap (config.ts checks them first).
 */
export function hostUserData(record: HostRecord, settings: HostSeedSettings, secret: string | undefined): string {
  return renderNodeBootstrap({
    hostname: record.name,
    roles: record.host.roles,
    aptRepoUrl: settings.aptUrl,
    aptKeyUrl: settings.aptKeyUrl,
    ...(settings.aptKeyFingerprint ? { aptKeyFingerprint: settings.aptKeyFingerprint } : {}),
    hostJoin: {
      ...(secret ? { secret } : {}),
      ...(record.host.install_disk ? { installDisk: record.host.install_disk } : {}),
    },
  });
}
