/**
 * The operator's key for signing (`mammatus event`, signed queries): a key held by the ssh-agent
 * at `SSH_AUTH_SOCK` first, then `--identity FILE`, then `~/.ssh/id_ed25519`. A key file with a
 * passphrase is used through the agent holding it (matched by its public key), never by asking
 * for the passphrase. Only ed25519 keys sign events: an RSA signature does not fit Serf's 512 bytes.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { agentSigners, keySigner, parseSshKey, type SshSigner } from '../../core/sshsig.js';
import { sealEvent } from '../../core/signed-event.js';
import { errorMessage } from '../../core/errors.js';
import type { CliIo } from './common.js';

/** Where to look for the operator's key. */
export interface OperatorKeyOptions {
  /** `--identity FILE`: a private key (its `.pub` beside it lets an agent-held key be matched). */
  readonly identity?: string;
  /** Default `SSH_AUTH_SOCK`. */
  readonly agentSocket?: string;
  /** Default the user's home (for `~/.ssh/id_ed25519`). */
  readonly home?: string;
}

/** The operator has no key this command can sign with; the message says what to do. */
export class NoOperatorKey extends Error {
  override readonly name = 'NoOperatorKey';
}

/** The public key blob of an identity file: its `.pub`, else the private key when it has no passphrase. */
async function identityBlob(file: string): Promise<{ blob?: Buffer; signer?: SshSigner }> {
  const pub = await readFile(`${file}.pub`, 'utf8').catch(() => undefined);
  const text = await readFile(file).catch((err: unknown) => {
    throw new NoOperatorKey(`cannot read ${file}: ${errorMessage(err)}`, { cause: err });
  });
  try {
    const signer = keySigner(parseSshKey(text));
    return { blob: signer.publicKey, signer };
  } catch (err) {
    // A passphrase-protected key: usable only through an agent that holds it.
    if (pub) return { blob: parseSshKey(pub).getPublicSSH() };
    throw new NoOperatorKey(`${file}: ${errorMessage(err)} (a key with a passphrase is used through ssh-agent: ssh-add ${file})`, {
      cause: err,
    });
  }
}

/** The ed25519 keys of the running ssh-agent, or none when there is no agent. */
async function agentKeys(socket: string | undefined): Promise<SshSigner[]> {
  if (!socket) return [];
  return (await agentSigners(socket).catch(() => [])).filter((k) => k.type === 'ssh-ed25519');
}

/** Finds the operator's signing key; @throws NoOperatorKey saying what to do. */
export async function operatorSigner(o: OperatorKeyOptions = {}): Promise<SshSigner> {
  const fromAgent = await agentKeys(o.agentSocket ?? process.env.SSH_AUTH_SOCK);
  if (o.identity) {
    const { blob, signer } = await identityBlob(o.identity);
    const held = fromAgent.find((k) => blob && k.publicKey.equals(blob));
    const chosen = held ?? signer;
    if (!chosen) throw new NoOperatorKey(`${o.identity} has a passphrase and no ssh-agent holds it: ssh-add ${o.identity}`);
    if (chosen.type !== 'ssh-ed25519') throw new NoOperatorKey(`${o.identity} is ${chosen.type}: signed events need an ed25519 key`);
    return chosen;
  }
  if (fromAgent[0]) return fromAgent[0];
  const home = o.home ?? os.homedir();
  const file = path.join(home, '.ssh', 'id_ed25519');
  if (existsSync(file))
    return (await identityBlob(file)).signer ?? Promise.reject(new NoOperatorKey(`${file} has a passphrase: ssh-add it`));
  throw new NoOperatorKey('no operator key: load an ed25519 key into ssh-agent (ssh-add), or pass --identity FILE');
}

/**
 * `payload` sealed for event or query `name` with the operator's key, or the exit code after the
 * error is printed (2: no key to sign with; 1: the signature cannot be made, e.g. too large).
 */
export async function sealAsOperator(
  name: string,
  payload: Buffer,
  o: OperatorKeyOptions & { readonly why: string },
  io: CliIo,
): Promise<Buffer | number> {
  try {
    return await sealEvent(await operatorSigner({ ...o, agentSocket: o.agentSocket ?? '' }), name, payload, Date.now());
  } catch (err) {
    io.err(`error: ${name} ${o.why}: ${errorMessage(err)}`);
    return err instanceof NoOperatorKey ? 2 : 1;
  }
}
