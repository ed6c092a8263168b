/**
 * The gateway's boot HTTP server as a supervised child (`mammatus service run boot-http`), run as
 * the service user like the metadata proxy: it serves only public, read-only files, so it needs
 * no secret and no privilege. Its settings come from the rendered `paths.boot_server` file,
 * sent as the child's first message; a change of that file restarts it.
 */
import { parse as parseYaml } from 'yaml';
import type { ChildInit } from '../../core/child-service.js';
import type { GatewayChildSpec } from './service-child.js';
import type { BootServerSection } from './render-boot.js';

/** The child's service name (`mammatus service run boot-http`). */
export const BOOT_SERVICE = 'boot-http';

/** The boot server's child: its settings are the rendered file's `boot:` section, checked again. */
export const BOOT_CHILD: GatewayChildSpec = {
  service: BOOT_SERVICE,
  withoutMammatus: 'the boot server is configured but this agent cannot run mammatus; PXE clients get no boot files',
  init(text, level) {
    const section = parseBootSection((parseYaml(text) as { boot?: unknown } | null)?.boot);
    return (): ChildInit => ({ type: 'init', service: BOOT_SERVICE, level: level ?? 'info', section: { ...section } });
  },
};

const isAbsolute = (v: unknown): v is string => typeof v === 'string' && v.startsWith('/') && !v.split('/').includes('..');

/** A map of URL paths to absolute file paths; `prefix` = the keys must end in `/`. */
function pathMap(v: unknown, what: string, prefix: boolean): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`boot server: ${what} must be a mapping`);
  const out: Record<string, string> = {};
  for (const [url, file] of Object.entries(v)) {
    if (!url.startsWith('/') || prefix !== url.endsWith('/') || !isAbsolute(file))
      throw new Error(`boot server: ${what} ${JSON.stringify(url)} → ${JSON.stringify(file)} is not a URL path and an absolute path`);
    out[url] = file;
  }
  return out;
}

/** Checks the section the child gets (it trusts nothing it did not check); throws a clear error. */
export function parseBootSection(v: unknown): BootServerSection {
  const s = (v ?? {}) as Record<string, unknown>;
  if (typeof s.host !== 'string' || !s.host) throw new Error('boot server: host must be an address');
  if (typeof s.port !== 'number' || !Number.isInteger(s.port) || s.port < 1 || s.port > 65535)
    throw new Error('boot server: port must be an integer from 1 to 65535');
  return { host: s.host, port: s.port, files: pathMap(s.files, 'files', false), dirs: pathMap(s.dirs, 'dirs', true) };
}
