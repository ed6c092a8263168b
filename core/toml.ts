/**
 * Strings for the TOML and HCL files mammatus renders (Telegraf's config on nodes and instances,
 * the Vault agent's on instances). Pure.
 */

const NAMED_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * A double-quoted string both TOML and HCL read back as `value`: `"`, `\`, tab, newline and return
 * escaped by name, every other control character as \uXXXX, lone surrogates (which neither format
 * allows) replaced by U+FFFD.
 */
export function tomlString(value: string): string {
  let out = '"';
  for (const ch of value.replace(/\p{Cs}/gu, '\uFFFD')) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch in NAMED_ESCAPES) out += NAMED_ESCAPES[ch];
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** An HCL native-syntax string: a TOML string with `${` and `%{`, which would start a template, doubled. */
export function hclString(value: string): string {
  return tomlString(value).replace(/[$%]\{/g, (m) => `${m[0]}${m}`);
}
