/**
 * TEMPORARY STUB of the SSH layer (the real one comes from branch h/ssh); same API, so the node
 * add/remove code type-checks until the merge. Replaced at the merge; never shipped.
 */
export interface SshTarget {
  readonly user: string;
  readonly host: string;
  readonly port: number;
}
export function parseSshTarget(text: string, port?: number): SshTarget {
  const at = text.lastIndexOf('@');
  return { user: at >= 0 ? text.slice(0, at) : 'root', host: at >= 0 ? text.slice(at + 1) : text, port: port ?? 22 };
}
export interface SshOptions {
  identity?: string;
  agentSocket?: string;
  home?: string;
  knownHosts?: string;
  acceptNew?: boolean;
  connectTimeoutMs?: number;
}
export type SshRefusal = 'target' | 'connect' | 'host-key-unknown' | 'host-key-mismatch' | 'auth' | 'no-key';
export class SshRefused extends Error {
  constructor(
    message: string,
    readonly reason: SshRefusal,
    readonly fingerprint?: string,
  ) {
    super(message);
  }
}
export interface RemoteResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}
export interface RemoteHost {
  readonly target: SshTarget;
  readonly hostKeyFingerprint: string;
  readonly auth: string;
  exec(argv: readonly string[], opts?: { stdin?: string | Buffer; timeoutMs?: number }): Promise<RemoteResult>;
  writeFile(path: string, content: string | Buffer, mode: number): Promise<void>;
  copyFile(localPath: string, path: string, mode: number): Promise<void>;
  close(): Promise<void>;
}
export function openSsh(_target: SshTarget, _opts?: SshOptions): Promise<RemoteHost> {
  return Promise.reject(new Error('stub'));
}
