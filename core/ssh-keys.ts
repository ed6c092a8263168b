/**
 * Which of the operator's keys `openSsh` offers, in OpenSSH's order: what an ssh-agent holds, then
 * `--identity`, then ~/.ssh/id_ed25519 and ~/.ssh/id_rsa (those that exist). Only public-key
 * methods are ever produced: mammatus has no password to send and asks for none.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
// ssh2 is CommonJS whose exports Node's ESM loader cannot list: take them from its default export.
import ssh2, { type AgentAuthMethod, type ParsedKey, type PublicKeyAuthMethod } from 'ssh2';
import { sshFingerprint } from './known-hosts.js';

const { OpenSSHAgent, utils } = ssh2;

/** One way in that will be offered, with how it is named to the user. */
export interface KeyCandidate {
  /** `agent`, `identity <file>` or `key <file>`: what `RemoteHost.auth` reports. */
  readonly label: string;
  readonly method: AgentAuthMethod | PublicKeyAuthMethod;
  /** The public keys it offers, as `type SHA256:… comment` (never key material). */
  readonly offers: readonly string[];
}

/** The candidates, and why keys that were looked for were left out (for the "no key" message). */
export interface KeyChoice {
  readonly candidates: readonly KeyCandidate[];
  readonly skipped: readonly string[];
  /** Set when `--identity` itself cannot be used: that is the operator's explicit choice, so it is fatal. */
  readonly identityError?: string;
}

const describeKey = (k: ParsedKey): string => `${k.type} ${sshFingerprint(k.getPublicSSH())}${k.comment ? ` ${k.comment}` : ''}`;

/** The keys an ssh-agent holds, or the reason it cannot be asked (bounded by `timeoutMs`). */
function agentKeys(socket: string, timeoutMs: number): Promise<ParsedKey[] | string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(`ssh-agent at ${socket} did not answer`), timeoutMs);
    new OpenSSHAgent(socket).getIdentities((err, keys) => {
      clearTimeout(timer);
      if (err) return resolve(`ssh-agent at ${socket}: ${err.message}`);
      resolve((keys ?? []).filter((k): k is ParsedKey => typeof k === 'object' && 'getPublicSSH' in k));
    });
  });
}

/** A private key file as a candidate, or why it cannot be one (missing, encrypted, not a key). */
async function keyFile(file: string, label: string, username: string): Promise<KeyCandidate | string> {
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (err) {
    return `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(err)}`;
  }
  const key: ParsedKey | Error = utils.parseKey(text);
  if (key instanceof Error) {
    return /encrypted|passphrase/i.test(key.message)
      ? `${file} is passphrase-protected: load it into your ssh-agent (ssh-add ${file}) instead`
      : `${file} is not a private key: ${key.message}`;
  }
  if (!key.isPrivateKey()) return `${file} is a public key, not a private one`;
  return { label, method: { type: 'publickey', username, key }, offers: [describeKey(key)] };
}

/** Options of {@link chooseKeys}. */
export interface ChooseKeysOptions {
  readonly username: string;
  readonly agentSocket: string;
  readonly identity?: string;
  readonly home: string;
  readonly timeoutMs: number;
}

/** Looks for the operator's keys in OpenSSH's order; see the module comment. */
export async function chooseKeys(opts: ChooseKeysOptions): Promise<KeyChoice> {
  const candidates: KeyCandidate[] = [];
  const skipped: string[] = [];
  if (opts.agentSocket) {
    const keys = await agentKeys(opts.agentSocket, opts.timeoutMs);
    if (typeof keys === 'string') skipped.push(keys);
    else if (keys.length === 0) skipped.push(`ssh-agent at ${opts.agentSocket} holds no key`);
    else
      candidates.push({
        label: 'agent',
        method: { type: 'agent', username: opts.username, agent: opts.agentSocket },
        offers: keys.map(describeKey),
      });
  } else skipped.push('no ssh-agent (SSH_AUTH_SOCK is not set)');
  let identityError: string | undefined;
  if (opts.identity !== undefined) {
    const got = await keyFile(opts.identity, `identity ${opts.identity}`, opts.username);
    if (typeof got === 'string') identityError = got;
    else candidates.push(got);
  }
  for (const name of ['id_ed25519', 'id_rsa']) {
    const file = join(opts.home, '.ssh', name);
    if (!existsSync(file)) {
      skipped.push(`${file}: no such file`);
      continue;
    }
    const got = await keyFile(file, `key ${file}`, opts.username);
    if (typeof got === 'string') skipped.push(got);
    else candidates.push(got);
  }
  return { candidates, skipped, ...(identityError === undefined ? {} : { identityError }) };
}
