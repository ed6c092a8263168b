/**
 * The gateway's metadata proxy as a supervised child (`mammatus service run metadata-proxy`), run as
 * the service user. That user cannot read the 0600 secret file, so the agent reads it at each
 * launch and sends it, with the rest of the proxy's rendered config, as the child's first message.
 */
import { parse as parseYaml } from 'yaml';
import type { ChildInit } from '../../core/child-service.js';
import { readSecretFileSync } from '../../core/files.js';
import { natsCaField } from '../../core/nats.js';
import type { GatewayChildSpec } from './service-child.js';

/** The metadata proxy's child: its first message carries the secret the service user cannot read. */
export const PROXY_CHILD: GatewayChildSpec = {
  service: 'metadata-proxy',
  withoutMammatus: 'the metadata proxy is configured but this agent cannot run mammatus; instances get no metadata',
  init: (text, level) => proxyInit(text, level),
};

/**
 * The proxy's first message, built from its rendered config (render-metadata.ts) at every launch:
 * the `metadata:` section with the secret file's content in place of its path (read as root, with
 * the same mode check as everywhere: a secret others can read is refused).
 */
export function proxyInit(confText: string, level?: string): () => ChildInit {
  const doc = (parseYaml(confText) ?? {}) as { log?: { level?: string }; metadata?: Record<string, unknown> };
  const { proxy_secret_file: file, ...section } = doc.metadata ?? {};
  return () => ({
    type: 'init',
    service: 'metadata-proxy',
    level: level ?? doc.log?.level ?? 'info',
    section: { ...section, ...(typeof file === 'string' ? { proxy_secret: readSecretFileSync(file).trim() } : {}) },
    // The cluster root (read by the agent): the proxy reaches the controllers over verified HTTPS.
    ...natsCaField(),
  });
}
