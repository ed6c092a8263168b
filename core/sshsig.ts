/**
 * OpenSSH's file signatures (SSHSIG, as `ssh-keygen -Y sign` makes and `ssh-keygen -Y verify`
 * checks): how an operator's SSH key signs what it asks the cluster to do. Keys are parsed, and
 * signatures made and checked, by ssh2's key utilities; this module only frames the SSHSIG blob
 * (OpenSSH's PROTOCOL.sshsig: a magic preamble and length-prefixed strings) and its armour.
 *
 * Supported keys: ssh-ed25519 and ssh-rsa (signing with rsa-sha2-512, as SSHSIG requires).
 */
import { createHash } from 'node:crypto';
// ssh2 is CommonJS whose exports Node's ESM loader cannot list: take them from its default export.
import ssh2, { type ParsedKey } from 'ssh2';

const { OpenSSHAgent, utils } = ssh2;

const MAGIC = Buffer.from('SSHSIG');
const VERSION = 1;
const BEGIN = '-----BEGIN SSH SIGNATURE-----';
const END = '-----END SSH SIGNATURE-----';
/** Hash algorithms SSHSIG allows; ssh-keygen uses sha512. */
const HASHES = new Set(['sha256', 'sha512']);

/** An SSHSIG that does not verify, with the reason. */
export class SshSigError extends Error {
  override readonly name = 'SshSigError';
}

/** A length-prefixed SSH string. */
function str(b: Buffer | string): Buffer {
  const bytes = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

/** Reads length-prefixed strings from `buf`, refusing anything short or left over. */
class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  bytes(n: number): Buffer {
    if (this.at + n > this.buf.length) throw new SshSigError('truncated signature');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  uint32(): number {
    return this.bytes(4).readUInt32BE(0);
  }
  string(): Buffer {
    return this.bytes(this.uint32());
  }
  end(): void {
    if (this.at !== this.buf.length) throw new SshSigError('bytes after the signature');
  }
}

/** What is signed: the preamble, namespace, reserved, hash algorithm and the message's hash. */
function signedData(namespace: string, hash: string, message: Uint8Array): Buffer {
  const digest = createHash(hash).update(message).digest();
  return Buffer.concat([MAGIC, str(namespace), str(''), str(hash), str(digest)]);
}

/** Parses an OpenSSH key (private or public, text or file contents); throws with ssh2's reason. */
export function parseSshKey(text: string | Buffer, passphrase?: string): ParsedKey {
  const key: ParsedKey | Error = utils.parseKey(text, passphrase);
  if (key instanceof Error) throw new SshSigError(`not an SSH key: ${key.message}`);
  if (key.type !== 'ssh-ed25519' && key.type !== 'ssh-rsa') throw new SshSigError(`${key.type} keys are not supported (ed25519 or RSA)`);
  return key;
}

/** Something that signs with an operator's key: the key file itself, or an ssh-agent holding it. */
export interface SshSigner {
  readonly type: string;
  /** The public key in SSH wire form. */
  readonly publicKey: Buffer;
  readonly comment: string;
  /** The raw signature of `data` (rsa-sha2-512 for RSA keys). */
  sign(data: Buffer): Promise<Buffer>;
}

/** A signer over a private key read from a file (`parseSshKey`). */
export function keySigner(key: ParsedKey): SshSigner {
  return {
    type: key.type,
    publicKey: key.getPublicSSH(),
    comment: key.comment,
    sign: (data) => {
      const raw = key.type === 'ssh-rsa' ? key.sign(data, 'sha512') : key.sign(data);
      return raw instanceof Error
        ? Promise.reject(new SshSigError(`signing failed: ${raw.message}`, { cause: raw }))
        : Promise.resolve(raw);
    },
  };
}

/** The ed25519 and RSA keys an ssh-agent (at `socket`, e.g. `SSH_AUTH_SOCK`) offers, as signers. */
export function agentSigners(socket: string): Promise<SshSigner[]> {
  const agent = new OpenSSHAgent(socket);
  return new Promise((resolve, reject) =>
    agent.getIdentities((err, keys) => {
      if (err) return reject(new SshSigError(`ssh-agent at ${socket}: ${err.message}`, { cause: err }));
      // OpenSSH's agent answers parsed keys; the typings allow other shapes for other agents.
      const parsed = (keys ?? []).filter((k): k is ParsedKey => typeof k === 'object' && 'getPublicSSH' in k);
      const usable = parsed.filter((k) => k.type === 'ssh-ed25519' || k.type === 'ssh-rsa');
      resolve(
        usable.map((k) => ({
          type: k.type,
          publicKey: k.getPublicSSH(),
          comment: k.comment,
          sign: (data: Buffer) =>
            new Promise<Buffer>((ok, fail) => {
              const done = (e?: Error | null, sig?: Buffer) =>
                e || !sig ? fail(new SshSigError(`ssh-agent refused to sign: ${e?.message ?? 'no signature'}`, { cause: e })) : ok(sig);
              if (k.type === 'ssh-rsa') agent.sign(k, data, { hash: 'sha512' }, done);
              else agent.sign(k, data, done);
            }),
        })),
      );
    }),
  );
}

/** The armoured SSHSIG of `message` in `namespace` by `signer`, as `ssh-keygen -Y sign` makes it. */
export async function signSshSig(signer: SshSigner, namespace: string, message: Uint8Array): Promise<string> {
  if (!namespace) throw new SshSigError('a namespace is required');
  const data = signedData(namespace, 'sha512', message);
  const algo = signer.type === 'ssh-rsa' ? 'rsa-sha2-512' : signer.type;
  const raw = await signer.sign(data);
  const blob = Buffer.concat([
    MAGIC,
    Buffer.from([0, 0, 0, VERSION]),
    str(signer.publicKey),
    str(namespace),
    str(''),
    str('sha512'),
    str(Buffer.concat([str(algo), str(raw)])),
  ]);
  const lines = blob.toString('base64').match(/.{1,70}/g) ?? [];
  return `${BEGIN}\n${lines.join('\n')}\n${END}\n`;
}

/** A verified signature: the signer's public key blob (SSH wire form) and its type. */
export interface VerifiedSig {
  readonly publicKey: Buffer;
  readonly type: string;
}

/**
 * Checks an armoured SSHSIG over `message` in `namespace` and returns the key that made it; the
 * caller decides whether that key may sign (`operators.ts`). @throws SshSigError with the reason.
 */
export function verifySshSig(armoured: string, namespace: string, message: Uint8Array): VerifiedSig {
  const text = armoured.trim();
  if (!text.startsWith(BEGIN) || !text.endsWith(END)) throw new SshSigError('not an armoured SSH signature');
  const body = text.slice(BEGIN.length, -END.length).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new SshSigError('bad armour');
  const r = new Reader(Buffer.from(body, 'base64'));
  if (!r.bytes(6).equals(MAGIC)) throw new SshSigError('not an SSHSIG blob');
  if (r.uint32() !== VERSION) throw new SshSigError('unsupported SSHSIG version');
  const publicKey = r.string();
  const ns = r.string().toString();
  r.string(); // reserved
  const hash = r.string().toString();
  const sig = new Reader(r.string());
  r.end();
  if (ns !== namespace) throw new SshSigError(`signed for namespace ${JSON.stringify(ns)}, not ${JSON.stringify(namespace)}`);
  if (!HASHES.has(hash)) throw new SshSigError(`unsupported hash ${JSON.stringify(hash)}`);
  const type = new Reader(publicKey).string().toString();
  const key = parseSshKey(`${type} ${publicKey.toString('base64')}`);
  const algo = sig.string().toString();
  const raw = sig.string();
  sig.end();
  const expected = type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256'] : [type];
  if (!expected.includes(algo)) throw new SshSigError(`signature algorithm ${algo} does not fit a ${type} key`);
  const data = signedData(namespace, hash, message);
  const ok = type === 'ssh-rsa' ? key.verify(data, raw, algo === 'rsa-sha2-512' ? 'sha512' : 'sha256') : key.verify(data, raw);
  if (ok !== true) throw new SshSigError('bad signature');
  return { publicKey, type };
}
