/**
 * The cluster's operators: OpenSSH public keys, one per line in `authorized_keys` format (options
 * before the key type are not allowed: an operator key has no restrictions to express), the key's
 * comment being the operator's name in logs. What an operator signs (sshsig.ts) is accepted when
 * its key is one of these.
 */
import { parseSshKey, SshSigError, verifySshSig } from './sshsig.js';

/** One operator key. */
export interface OperatorKey {
  /** The key's comment (`alice@laptop`), or its type and fingerprint's start when it has none. */
  readonly name: string;
  readonly type: string;
  /** The public key in SSH wire form (what an SSHSIG names). */
  readonly blob: Buffer;
}

/** A line of `trust.operators` that is not an operator key, with its 1-based number. */
export class OperatorKeyError extends Error {
  override readonly name = 'OperatorKeyError';
}

/**
 * Parses `authorized_keys`-format lines (blank lines and `#` comments skipped). @throws
 * OperatorKeyError naming the first bad line.
 */
export function parseOperators(lines: readonly string[]): OperatorKey[] {
  const keys: OperatorKey[] = [];
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const [type = '', data = '', ...comment] = line.split(/\s+/);
    try {
      const key = parseSshKey(`${type} ${data}`);
      const blob = key.getPublicSSH();
      const name = comment.join(' ') || `${key.type} ${blob.toString('base64').slice(-12)}`;
      keys.push({ name, type: key.type, blob });
    } catch (err) {
      const why = err instanceof SshSigError ? err.message : String(err);
      throw new OperatorKeyError(`trust.operators line ${i + 1}: ${why}`, { cause: err });
    }
  });
  return keys;
}

/**
 * Verifies an operator's SSHSIG over `message` in `namespace`: the operator who signed, or an
 * SshSigError saying why not (bad signature, wrong namespace, a key that is not an operator's).
 */
export function verifyOperatorSig(
  operators: readonly OperatorKey[],
  armoured: string,
  namespace: string,
  message: Uint8Array,
): OperatorKey {
  const { publicKey } = verifySshSig(armoured, namespace, message);
  const operator = operators.find((o) => o.blob.equals(publicKey));
  if (!operator) throw new SshSigError('signed by a key that is not an operator key (trust.operators)');
  return operator;
}
