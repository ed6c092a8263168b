/**
 * The CA backends' configs, rendered pure from the controller's settings (docs/ca.md): caddy's JSON
 * config (its `pki` app and `acme_server` handler) and step-ca's `ca.json` with its password file.
 * Both read the same files — the cluster's root certificate and the one intermediate every
 * controller shares — so any controller issues, whichever backend it runs.
 *
 * What caddy 2.6.2 forced (checked against it, test/integration/ca-acme.test.ts):
 * - The ACME provisioner's name is the id of the `pki` CA (`acme_server` names its one provisioner
 *   after its `ca`), and the URL's path segment must match it: so the CA's id is the provisioner
 *   name (default `acme`), and the CA is *named* `mammatus`.
 * - A `pki` CA given a root certificate also reads a root key, though with an intermediate given it
 *   never signs with it (no `sign_with_root`, and a CA whose intermediate comes from the config is
 *   never renewed by caddy). The intermediate's key is given in its place, so the root key can stay
 *   offline.
 * - `acme_server` has no lifetime setting in 2.6.2: ACME certificates live 12 h (its provisioner's
 *   default). `cert_lifetime` applies to step-ca, and to the CA's own TLS certificate here.
 * - With automatic HTTPS off, the names of the CA's own certificate come from `tls.certificates.automate`.
 */
import { createECDH, createHash, hkdfSync } from 'node:crypto';
import { posix } from 'node:path';
import { isDnsLabel } from '../../core/net.js';
import type { RenderedFile } from '../types.js';
import type { CaConfig } from './config.js';

/** The DNS domain of the cluster's names (`<node>.mammatus`, `ca.mammatus`). */
export const CA_DOMAIN = 'mammatus';

/** The name every controller's backend answers as (the gateway resolves it to all controllers). */
export const CA_NAME = `ca.${CA_DOMAIN}`;

/** step-ca's JWK provisioner: one-time tokens for the agents' own certificates. */
export const JWK_PROVISIONER = 'mammatus';

/** The files of each backend, inside `paths.config`. */
export const CA_FILES = { caddy: 'caddy.json', stepCa: 'ca.json', password: 'password.txt' } as const;

/** The rendered paths of each backend's files. */
export function caConfigPaths(ca: CaConfig): { caddy: string; stepCa: string; password: string } {
  const at = (f: string) => posix.join(ca.paths.config, f);
  return { caddy: at(CA_FILES.caddy), stepCa: at(CA_FILES.stepCa), password: at(CA_FILES.password) };
}

/** The names of a controller's CA certificate: `ca.mammatus` and, when its name is a DNS label, `<node>.mammatus`. */
export function caNames(node: string): string[] {
  const label = node.toLowerCase();
  return isDnsLabel(label) && label !== 'ca' ? [CA_NAME, `${label}.${CA_DOMAIN}`] : [CA_NAME];
}

/** The ACME directory's path on the backend. */
export const directoryPath = (ca: Pick<CaConfig, 'provisioner'>): string => `/acme/${ca.provisioner}/directory`;

/** caddy's JSON config for this controller. */
export function renderCaddyConfig(node: string, ca: CaConfig): string {
  const id = ca.provisioner;
  const names = caNames(node);
  const config = {
    // No admin endpoint (nothing may reconfigure it) and no autosave into the user's home.
    admin: { disabled: true, config: { persist: false } },
    storage: { module: 'file_system', root: posix.join(ca.paths.data_dir, 'caddy') },
    apps: {
      pki: {
        certificate_authorities: {
          [id]: {
            name: 'mammatus',
            install_trust: false,
            // The intermediate's key stands in for the root's, which caddy reads but never uses (header).
            root: { certificate: ca.paths.root_cert, private_key: ca.paths.intermediate_key, format: 'pem_file' },
            intermediate: { certificate: ca.paths.intermediate_cert, private_key: ca.paths.intermediate_key, format: 'pem_file' },
          },
        },
      },
      http: {
        servers: {
          ca: {
            listen: [ca.listen],
            routes: [{ match: [{ path: [`/acme/${id}/*`] }], handle: [{ handler: 'acme_server', ca: id }] }],
            // Clients that send no SNI (an IP in the URL) get the ca.mammatus certificate.
            tls_connection_policies: [{ default_sni: CA_NAME }],
            // No redirect server on port 80 and no certificates from public CAs: TLS from our CA only.
            automatic_https: { disable: true },
          },
        },
      },
      tls: {
        certificates: { automate: names },
        automation: { policies: [{ subjects: names, issuers: [{ module: 'internal', ca: id, lifetime: ca.cert_lifetime }] }] },
      },
    },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** The public half of step-ca's JWK provisioner key (RFC 7517), with its RFC 7638 thumbprint as `kid`. */
export interface PublicJwk {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
  readonly use: 'sig';
  readonly alg: 'ES256';
  readonly kid: string;
}

/** P-256's group order. */
const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

/**
 * The JWK provisioner's key pair, derived from the authority seed (which only controllers hold),
 * so every controller renders the same provisioner and the agents can sign one-time tokens with
 * the private half without storing it anywhere. HKDF-SHA256 gives 48 bytes, reduced into
 * [1, n-1] (the extra 16 bytes make the bias negligible); node:crypto's ECDH computes the point.
 */
export function provisionerKey(authoritySeed: string): { publicJwk: PublicJwk; d: string } {
  const okm = Buffer.from(hkdfSync('sha256', authoritySeed, 'mammatus', 'step-ca jwk provisioner', 48));
  const scalar = (BigInt(`0x${okm.toString('hex')}`) % (P256_N - 1n)) + 1n;
  const priv = Buffer.from(scalar.toString(16).padStart(64, '0'), 'hex');
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(priv);
  const point = ecdh.getPublicKey();
  const x = point.subarray(1, 33).toString('base64url');
  const y = point.subarray(33, 65).toString('base64url');
  // RFC 7638: the required members in lexical order, no spaces.
  const kid = createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`).digest('base64url');
  return { publicJwk: { kty: 'EC', crv: 'P-256', x, y, use: 'sig', alg: 'ES256', kid }, d: priv.toString('base64url') };
}

/** The password file's content: derived like the provisioner key (the same on every controller). */
export function stepCaPassword(authoritySeed: string): string {
  return `${Buffer.from(hkdfSync('sha256', authoritySeed, 'mammatus', 'step-ca password', 32)).toString('base64url')}\n`;
}

/**
 * step-ca's `ca.json`. The ACME provisioner is named like the URL's path segment; the JWK
 * provisioner carries only the public key: its private half is derived by the agents
 * (`provisionerKey`), so there is no `encryptedKey` (which only `step ca token` reads, to fetch the
 * key from the CA; no JOSE library is installed to make one honestly). bbolt, not badger: badger's
 * mmap fails on 32-bit ARM.
 */
export function renderStepCaConfig(node: string, ca: CaConfig, authoritySeed: string): string {
  const config = {
    root: ca.paths.root_cert,
    crt: ca.paths.intermediate_cert,
    key: ca.paths.intermediate_key,
    address: ca.listen,
    dnsNames: caNames(node),
    logger: { format: 'json' },
    db: { type: 'bbolt', dataSource: posix.join(ca.paths.data_dir, 'step-ca.db') },
    authority: {
      claims: { minTLSCertDuration: '5m', maxTLSCertDuration: '168h', defaultTLSCertDuration: '24h' },
      // Only cluster names, whatever the provisioner: http-01 alone would also issue a public name
      // to whoever answers for it. (ca.json takes a policy here; a provisioner's own is admin-API only.)
      policy: { x509: { allow: { dns: [`*.${CA_DOMAIN}`] } } },
      provisioners: [
        { type: 'ACME', name: ca.provisioner, claims: { defaultTLSCertDuration: ca.cert_lifetime } },
        {
          type: 'JWK',
          name: JWK_PROVISIONER,
          key: provisionerKey(authoritySeed).publicJwk,
          claims: { defaultTLSCertDuration: ca.node_cert_lifetime },
        },
      ],
    },
    tls: { minVersion: 1.2, maxVersion: 1.3, renegotiation: false },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/**
 * The backend files the role owns, for `ca.backend`: caddy's config, step-ca's config and password
 * file, or all three for `auto` (which of them runs is decided where the binaries are looked up:
 * ca-backend.ts). None when the CA is disabled or this node holds no authority seed.
 */
export function renderCaFiles(node: string, ca: CaConfig, authoritySeed: string | undefined): RenderedFile[] {
  if (!ca.enabled) return [];
  const paths = caConfigPaths(ca);
  const files: RenderedFile[] = [];
  if (ca.backend !== 'step-ca') files.push({ path: paths.caddy, content: renderCaddyConfig(node, ca), mode: 0o644 });
  if (ca.backend !== 'caddy' && authoritySeed !== undefined) {
    files.push({ path: paths.stepCa, content: renderStepCaConfig(node, ca, authoritySeed), mode: 0o644 });
    // 0600: step-ca's user gets it handed over at launch (ca-backend.ts).
    files.push({ path: paths.password, content: stepCaPassword(authoritySeed), mode: 0o600 });
  }
  return files;
}
