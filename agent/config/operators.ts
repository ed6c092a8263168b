/**
 * The operator keys of a loaded config: `trust.operators` (a list) and `trust.operators_file` (an
 * `authorized_keys`-format file), parsed with core/operators.ts. A bad line fails the load like
 * any bad key, naming the file and line, so a reload keeps the last good operators. The file must
 * be writable only by its owner, root or the agent's user (OpenSSH's StrictModes), and the agent
 * watches it with its config files.
 */
import { readFile, stat } from 'node:fs/promises';
import type { OperatorKey } from '../../core/operators.js';
import { errorMessage } from '../../core/errors.js';
import { SettingsError } from '../../core/validation.js';
import type { TrustConfig } from './schema.js';

/** Most bytes read from the operators file: a few hundred keys, never a runaway file. */
const MAX_FILE_BYTES = 256 * 1024;

/**
 * The operators `trust` names. @throws SettingsError naming the key and the layer that set it
 * (`sourceOf`), or the operators file and its line.
 */
export async function loadOperators(
  trust: TrustConfig,
  sourceOf: (key: string) => string | undefined = () => undefined,
): Promise<OperatorKey[]> {
  // Parsing keys needs ssh2 (and its 16 MiB WebAssembly heap): loaded only when there are keys, so a
  // process that reads a config without operators (`messaging serve`) does not carry it.
  if (trust.operators.length === 0 && !trust.operators_file) return [];
  const { OperatorKeyError, parseOperators } = await import('../../core/operators.js');
  const parseOr = (parse: () => OperatorKey[], key: string, file: string | undefined): OperatorKey[] => {
    try {
      return parse();
    } catch (err) {
      if (!(err instanceof OperatorKeyError)) throw err;
      throw new SettingsError(key, err.message.replace(/^trust\.operators /, ''), file);
    }
  };
  const listed = parseOr(() => parseOperators(trust.operators), 'trust.operators', sourceOf('trust.operators'));
  const source = sourceOf('trust.operators_file');
  if (!trust.operators_file) return listed;
  let text: string;
  try {
    // As OpenSSH's StrictModes for authorized_keys: whoever may write the file may make themselves an operator.
    const st = await stat(trust.operators_file);
    const uid = process.getuid?.() ?? 0;
    if (st.uid !== 0 && st.uid !== uid) {
      throw new SettingsError(
        'trust.operators_file',
        `${trust.operators_file} must be owned by root or the agent's user (it is uid ${st.uid})`,
        source,
      );
    }
    if (st.mode & 0o022) {
      throw new SettingsError(
        'trust.operators_file',
        `${trust.operators_file} must not be writable by group or others (chmod go-w)`,
        source,
      );
    }
    text = await readFile(trust.operators_file, 'utf8');
  } catch (err) {
    if (err instanceof SettingsError) throw err;
    throw new SettingsError('trust.operators_file', `cannot read ${trust.operators_file}: ${errorMessage(err)}`, source);
  }
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) {
    throw new SettingsError('trust.operators_file', `${trust.operators_file} is over ${MAX_FILE_BYTES} bytes`, source);
  }
  const fromFile = parseOr(() => parseOperators(text.split('\n')), 'trust.operators_file', trust.operators_file);
  // The same key listed twice is one operator (its first name wins).
  return [...listed, ...fromFile.filter((k) => !listed.some((l) => l.blob.equals(k.blob)))];
}
