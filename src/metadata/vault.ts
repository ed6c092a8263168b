/**
 * Minting an instance's Vault AppRole secret_id, response-wrapped, for its vendor-data.
 *
 * The secret_id works once (`num_uses` 1) and only from the instance's address (`cidr_list`; the
 * token it logs in to likewise, `token_bound_cidrs`), and Vault hands it out wrapped: the document
 * carries a single-use wrapping token that expires after `wrapTtl`. A neighbour who reads the
 * vendor-data first (source-IP identity is weak on a flat LAN) spends the token, and the instance's
 * unwrap then fails loudly instead of a secret leaking silently. Vault API: POST
 * /v1/auth/<mount>/role/<name>/secret-id with the X-Vault-Wrap-TTL header.
 *
 * Neither the controller's token nor the wrapping token ever appears in an error message or log.
 */
import { isIP } from 'node:net';
import { errorMessage } from '../../core/errors.js';

/** What `mintWrappedSecretId` needs. */
export interface MintWrappedSecretIdOptions {
  /** Vault's URL as the controller reaches it, e.g. `https://10.0.0.1:8200`. */
  readonly address: string;
  /** The controller's Vault token (from `metadata.vendor_data.vault.token_file`). */
  readonly token: string;
  /** AppRole mount, e.g. `auth/approle`. */
  readonly approlePath: string;
  readonly roleName: string;
  /** Lifetime of the wrapping token, a Vault duration such as `15m`. */
  readonly wrapTtl: string;
  /** The instance's address as a CIDR (`10.0.0.5/32`); a bare address gets /32 or /128. */
  readonly cidr: string;
  /** The secret_id's own TTL (Vault's `ttl`); absent = the role's `secret_id_ttl`. */
  readonly secretIdTtl?: string;
  /** Stored with the secret_id and shown in Vault's audit log, e.g. `{ instance_id: 'i-…' }`. Not secret. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Default 5000. */
  readonly timeoutMs?: number;
  /** Injected for tests; default the global `fetch`. */
  readonly fetch?: typeof fetch;
}

/** Minting failed: Vault unreachable, refused, or answered without a wrapped token. */
export class VaultError extends Error {
  override readonly name = 'VaultError';
  constructor(
    message: string,
    /** Vault's HTTP status, when it answered. */
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Asks Vault for a new secret_id of `roleName`, bound to `cidr`, usable once, wrapped for `wrapTtl`,
 * and returns the wrapping token (`wrap_info.token`).
 *
 * @throws VaultError with Vault's own error messages (never a token) when it does not succeed.
 */
export async function mintWrappedSecretId(opts: MintWrappedSecretIdOptions): Promise<string> {
  const cidr = toCidr(opts.cidr);
  const mount = opts.approlePath.replace(/^\/+|\/+$/g, '');
  const url = `${opts.address.replace(/\/+$/, '')}/v1/${mount}/role/${encodeURIComponent(opts.roleName)}/secret-id`;
  const what = `POST ${url}`;
  const body: Record<string, unknown> = { cidr_list: [cidr], token_bound_cidrs: [cidr], num_uses: 1 };
  if (opts.secretIdTtl !== undefined) body.ttl = opts.secretIdTtl;
  // Vault takes the metadata as a JSON-encoded string, not an object.
  if (opts.metadata) body.metadata = JSON.stringify(opts.metadata);

  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, {
      method: 'POST',
      headers: { 'X-Vault-Token': opts.token, 'X-Vault-Wrap-TTL': opts.wrapTtl, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
    });
  } catch (err) {
    throw new VaultError(`${what}: ${errorMessage(err)}`, undefined, { cause: err });
  }
  const text = await res.text().catch(() => '');
  let answer: { errors?: unknown; wrap_info?: { token?: unknown } | null } = {};
  try {
    answer = text ? (JSON.parse(text) as typeof answer) : {};
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  if (!res.ok) {
    const errors = Array.isArray(answer.errors) ? answer.errors.filter((e): e is string => typeof e === 'string') : [];
    throw new VaultError(`${what}: Vault answered ${res.status}${errors.length ? `: ${errors.join('; ')}` : ''}`, res.status);
  }
  const token = answer.wrap_info?.token;
  // Without wrap_info Vault ignored the wrap header and the answer holds the bare secret_id: drop it.
  if (typeof token !== 'string' || token === '') throw new VaultError(`${what}: Vault's answer has no wrap_info.token`, res.status);
  return token;
}

/** `10.0.0.5` → `10.0.0.5/32`, `fd00::5` → `fd00::5/128`; a CIDR is checked and kept. */
export function toCidr(value: string): string {
  const [addr = '', prefix, ...rest] = value.split('/');
  const family = isIP(addr);
  const max = family === 4 ? 32 : 128;
  if (family === 0 || rest.length > 0 || (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= max))) {
    throw new VaultError(`${JSON.stringify(value)} is not an IP address or CIDR`);
  }
  return `${addr}/${prefix ?? max}`;
}
