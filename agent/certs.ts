/**
 * The node's own TLS certificate (issue 20): the agent keeps `<state_dir>/tls/node.key` (made here,
 * 0600, never sent anywhere), `node.crt` (its certificate then the intermediate) and `ca.crt` (the
 * cluster root), and renews the certificate at two thirds of its lifetime (±10 %).
 *
 * The root comes with the node's admission (`ca_root`, checked against the pinned fingerprint) and
 * is written to `ca.crt` before any NATS connection (`installRoot`), so every connection, the first
 * certificate request included, verifies its server. A controller asks its own server, and without
 * a root of its own takes the bucket's when it matches its pin (only controllers write it). A failure is kept as `last_error` in the status answer and
 * retried with backoff, so `mammatus status` shows a failing renewal long before the expiry. After
 * new files are written, the listeners (`onChange`) are told: nats-server reloads, HTTPS servers
 * swap their context. Never throws into the agent.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { isIP } from 'node:net';
import { CA_SIGN_SUBJECT, type CaSignAnswer } from '../core/ca.js';
import type { FileOps, Logger, Member } from '../core/contracts.js';
import { detach, errorMessage } from '../core/errors.js';
import { checkPinnedRoot } from '../core/ca.js';
import { connectNats, type NatsTls } from '../core/nats.js';
import type { NodeCredentials } from '../core/trust.js';
import type { TlsStatus } from './types.js';
import { certFingerprint, makeNodeCsr, verifyNodeChain } from '../src/ca/pki.js';
import { nodeKey, writeCredentialsRoot } from './certs-files.js';
import { fetchCaPublic } from '../src/ca/store.js';
import { memberAddresses } from '../src/ca/sign-service.js';
import { backoffMs, renewAt, tlsPaths, trustedRoot } from './certs-plan.js';

/** What the keeper works with (the agent's; tests pass their own). */
export interface NodeCertDeps {
  readonly files: FileOps;
  readonly stateDir: () => string;
  /** This node's Serf name ('' until connected). */
  readonly node: () => string;
  readonly credentials: () => NodeCredentials | undefined;
  readonly members: () => readonly Member[];
  /** The NATS servers to ask (agent/certs-plan.ts certServers). */
  readonly servers: () => readonly string[];
  readonly log: Logger;
  /** `tls`: verify against this root; undefined: the process's default (core/nats.ts). */
  readonly connect?: (servers: readonly string[], creds: NodeCredentials, tls: NatsTls | undefined) => Promise<NatsConnection>;
  readonly now?: () => Date;
  readonly random?: () => number;
  readonly requestTimeoutMs?: number;
}

/** How long to wait before looking again when the node has no name or no credentials yet. */
const IDLE_MS = 5000;
/**
 * How long to wait before asking again when the cluster has no CA (labs without `ca init` run in
 * plain text: that is no error) or no controller is known.
 */
const NO_CA_MS = 10_000;

/** The cluster has no CA, or no controller to ask: nothing to do yet, and nothing wrong. */
class NotYet extends Error {}

/** The certificate in use, as checked. */
interface Current {
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly renewAt: Date;
}

/** Keeps this node's certificate current. */
export class NodeCertificates {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private current: Current | undefined;
  /** SHA-256 of the root the current certificate chains to (`ca.crt`). */
  private currentRoot: string | undefined;
  private loaded = false;
  /** A CA was found in the bucket at least once (from then on, failing to reach it is an error). */
  private sawCa = false;
  private lastError: string | null = null;
  private failures = 0;
  /** Certificates obtained since the agent started. */
  private issued = 0;
  private readonly listeners: (() => void)[] = [];
  private readonly now: () => Date;

  constructor(private readonly d: NodeCertDeps) {
    this.now = d.now ?? (() => new Date());
  }

  /** Starts the loop (a first look right away). */
  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops the loop; a request under way finishes and changes nothing more. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Looks again now (a config reload: `ca init` may just have run, the credentials may be new). */
  kick(): void {
    if (!this.current || this.lastError !== null || this.pinMoved()) this.schedule(0);
  }

  /**
   * The credentials pin another root than the certificate in use chains to (admitted again after
   * `ca init --force`): the certificate is replaced at once, not at its renewal hours later, as
   * the rest of the cluster no longer accepts it.
   */
  private pinMoved(): boolean {
    const pin = this.d.credentials()?.ca_fingerprint;
    return Boolean(pin && this.currentRoot && pin !== this.currentRoot);
  }

  /**
   * Writes `ca.crt` from the root the credentials carry (agent/certs-files.ts): the agent calls it
   * before its first NATS connection and after each reload of the credentials. True when the file
   * changed; never throws (a problem is the status's `last_error`).
   */
  async installRoot(): Promise<boolean> {
    try {
      const wrote = await writeCredentialsRoot(this.d.files, tlsPaths(this.d.stateDir()).ca, this.d.credentials());
      if (wrote) this.d.log.info('node certificate: wrote the CA root from the credentials');
      return wrote;
    } catch (err) {
      this.lastError = errorMessage(err);
      this.d.log.error({ err: this.lastError }, 'node certificate: cannot write the CA root from the credentials');
      return false;
    }
  }

  /** Calls `listener` after each new certificate is written. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The `tls` section of the status answer; undefined while nothing was tried (no credentials). */
  status(): TlsStatus | undefined {
    if (!this.current && this.lastError === null) return undefined;
    return {
      not_after: this.current?.notAfter.toISOString() ?? null,
      renew_at: this.current?.renewAt.toISOString() ?? null,
      last_error: this.lastError,
      issued: this.issued,
    };
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    // setTimeout holds at most ~24.8 days; a longer wait just looks again then.
    const wait = Math.min(Math.max(0, ms), 2 ** 31 - 1);
    this.timer = setTimeout(() => detach(this.tick(), (err) => this.d.log.error({ err }, 'node certificate: check failed')), wait);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      const node = this.d.node();
      const creds = this.d.credentials();
      if (!node || !creds) return this.schedule(IDLE_MS);
      if (!this.loaded) {
        this.loaded = true;
        await this.loadExisting(node, creds);
      }
      const now = this.now().getTime();
      if (this.current && now < this.current.renewAt.getTime() && !this.pinMoved())
        return this.schedule(this.current.renewAt.getTime() - now);
      try {
        await this.obtain(node, creds);
        const due = this.current!.renewAt.getTime() - this.now().getTime();
        // A certificate due as soon as it arrives (this clock ahead of the controllers', or an
        // intermediate about to expire) is not asked for again at once: that would loop flat out.
        if (due <= 0)
          throw new Error(
            `the new certificate is due for renewal already (valid until ${this.current!.notAfter.toISOString()}): is this node's clock ahead, or the intermediate expiring?`,
          );
        this.failures = 0;
        this.lastError = null;
        this.schedule(due);
      } catch (err) {
        if (err instanceof NotYet) {
          this.d.log.debug({ why: err.message }, 'node certificate: not yet');
          return this.schedule(NO_CA_MS);
        }
        this.failures++;
        this.lastError = errorMessage(err);
        const left = this.current ? this.current.notAfter.getTime() - this.now().getTime() : undefined;
        const wait = backoffMs(this.failures, left);
        this.d.log.warn(
          { err: this.lastError, retry_in_ms: wait, not_after: this.current?.notAfter },
          'node certificate: could not obtain one',
        );
        this.schedule(wait);
      }
    } catch (err) {
      // Nothing above should throw; if it does, the agent carries on and looks again later.
      this.lastError = errorMessage(err);
      this.schedule(backoffMs(++this.failures));
    } finally {
      this.running = false;
    }
  }

  /** Takes up the files of an earlier run when they still check out (a restart does not re-issue). */
  private async loadExisting(node: string, creds: NodeCredentials): Promise<void> {
    const p = tlsPaths(this.d.stateDir());
    try {
      const [key, chain, root] = await Promise.all([this.d.files.read(p.key), this.d.files.read(p.cert), this.d.files.read(p.ca)]);
      if (!key || !chain || !root) return;
      const rootFp = certFingerprint(root);
      // One CA certificate, the pinned one (a bundle would trust every certificate in it).
      checkPinnedRoot(root, creds.ca_fingerprint ?? rootFp);
      this.use(verifyNodeChain(chain, root, key, node, this.now()));
      this.currentRoot = rootFp;
      this.d.log.info({ not_after: this.current!.notAfter, renew_at: this.current!.renewAt }, 'node certificate: using the one on disk');
    } catch (err) {
      this.d.log.info({ err: errorMessage(err) }, 'node certificate: the files on disk are not usable; asking for a new one');
    }
  }

  private use(validity: { notBefore: Date; notAfter: Date }): void {
    const random = (this.d.random ?? Math.random)();
    this.current = { ...validity, renewAt: renewAt(validity.notBefore, validity.notAfter, random) };
  }

  /** Fetches and checks the root, asks for a certificate, checks it, writes the files. */
  private async obtain(node: string, creds: NodeCredentials): Promise<void> {
    // The controllers would refuse it with a puzzling reason: say the real one.
    if (node !== node.toLowerCase())
      throw new Error(
        `${node} has capitals: DNS names ignore case, so it would share ${node.toLowerCase()}.mammatus with another node; no certificate`,
      );
    const servers = this.d.servers();
    if (servers.length === 0) throw new NotYet('no controller known to ask for a certificate');
    const p = tlsPaths(this.d.stateDir());
    // The root is known before connecting (never learnt over an unverified connection); a node
    // with a pin but no root stops here (trustedRoot says: re-admit it).
    const trusted = trustedRoot(creds, creds.ca_root ? undefined : await this.d.files.read(p.ca));
    if (trusted) await this.installRoot();
    const controller = creds.roles.includes('controller');
    const connect =
      this.d.connect ??
      ((s, c, tls) => connectNats(s, { name: 'mammatus-certs', timeoutMs: 5000, credentials: c, ...(tls ? { tls } : {}) }));
    let nc: NatsConnection;
    try {
      nc = await connect(servers, creds, trusted && !controller ? { ca: trusted } : undefined);
    } catch (err) {
      // Unreachable NATS is a TLS failure only where TLS is expected: a pinned root, or a CA seen
      // before. A lab that never ran `ca init` is not told about it here (its roles say it).
      if (!creds.ca_fingerprint && !this.current && !this.sawCa) throw new NotYet(errorMessage(err));
      throw err;
    }
    try {
      const pub = await fetchCaPublic(nc);
      if (!pub) throw new NotYet('the cluster has no CA yet (mammatus ca init)');
      this.sawCa = true;
      const pin = creds.ca_fingerprint ?? (controller ? pub.fingerprint : undefined);
      if (!pin) throw new Error('no CA fingerprint was pinned at admission: admit this node again (node add / node admit) after ca init');
      const root = trusted ?? checkPinnedRoot(pub.root, pin);
      const fingerprint = certFingerprint(root);
      if (pub.fingerprint !== pin)
        throw new Error(`the CA root ${pub.fingerprint.slice(0, 16)}… is not the one pinned at admission (${pin.slice(0, 16)}…)`);
      const key = await nodeKey(this.d.files, p.key);
      // Its Serf address, unless another member claims it too: the controllers would refuse it then.
      const ips = memberAddresses(this.d.members(), node).filter((addr) => isIP(addr));
      const csr = await makeNodeCsr(node, key, ips);
      const msg = await nc.request(`${CA_SIGN_SUBJECT}.${node}`, JSON.stringify({ csr }), { timeout: this.d.requestTimeoutMs ?? 10_000 });
      const answer = msg.json<CaSignAnswer>();
      if (!answer.ok) throw new Error(`the controllers refused: ${answer.error}`);
      const validity = verifyNodeChain(answer.chain, root, key, node, this.now());
      // The root first: a reader that sees the new chain finds the root that checks it.
      await this.d.files.write(p.ca, root, 0o644);
      await this.d.files.write(p.cert, answer.chain, 0o644);
      this.use(validity);
      this.currentRoot = fingerprint;
      this.issued++;
      this.d.log.info(
        { not_after: validity.notAfter, renew_at: this.current!.renewAt, issued: this.issued },
        'node certificate: new one written',
      );
    } finally {
      await nc.close().catch(() => undefined);
    }
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.d.log.error({ err }, 'node certificate: a listener failed');
      }
    }
  }
}
