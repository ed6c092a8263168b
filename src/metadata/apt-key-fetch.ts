/**
 * How a new node fetches the cluster repository's key at first boot (the node bootstrap's
 * `bootcmd`), and how it pins that key to a fingerprint. A key fetched over plain http:// could be
 * swapped by anyone on the path, and apt would then trust whatever they sign; so the bootstrap
 * takes plain http only with a fingerprint, and the host checks it before the key reaches
 * /etc/apt/keyrings. The check runs in `python3`, which every cloud-init host has (cloud-init is
 * Python), so the image needs no gpg. Pure: strings and a validator.
 */
import { SettingsError } from '../../core/validation.js';

/**
 * The fingerprint in the form the check compares: upper-case hex without spaces; 40 digits (an
 * OpenPGP v4 key, what `gpg` and `repo-build.sh` print) or 64 (v6).
 *
 * @throws SettingsError (field `aptKeyFingerprint`) for anything else.
 */
export function normalizeFingerprint(value: string): string {
  const hex = value.replace(/[\s:]/g, '').toUpperCase();
  if (!/^(?:[0-9A-F]{40}|[0-9A-F]{64})$/.test(hex)) {
    throw new SettingsError('aptKeyFingerprint', 'must be the key fingerprint: 40 (or 64) hex digits, as gpg prints it');
  }
  return hex;
}

/**
 * Python 3 program: `python3 -c PROGRAM FILE FINGERPRINT OUT` exits 0 only when FILE (an armoured or
 * binary OpenPGP public key) holds exactly one primary key and its fingerprint is FINGERPRINT, and then
 * writes the bytes it checked, in binary form, to OUT: what apt gets is exactly what was checked (an
 * armoured file is one block and nothing else; a binary file is parsed whole, packet by packet). One
 * key only: a second primary key beside the pinned one would be trusted by apt too. Subkeys are fine
 * (apt's verifier checks their binding signatures). Fingerprints: v4 = SHA-1 over 0x99, a 2-byte
 * length and the key packet; v6 = SHA-256 over 0x9B, a 4-byte length and the packet (RFC 9580 §5.5.4).
 */
export const KEY_FINGERPRINT_CHECK = `import sys, hashlib, base64
def fail(why):
    sys.stderr.write("mammatus: apt key refused: " + why + "\\n"); sys.exit(1)
data = open(sys.argv[1], "rb").read()
BEGIN, END = b"-----BEGIN PGP PUBLIC KEY BLOCK-----", b"-----END PGP PUBLIC KEY BLOCK-----"
if data.lstrip().startswith(BEGIN):
    rest = data.lstrip()[len(BEGIN):]
    if BEGIN in rest or rest.count(END) != 1: fail("the armour must hold exactly one key block")
    inner, after = rest.split(END, 1)
    if after.strip(): fail("bytes after the armoured key block")
    # Armour headers ("Comment: …") hold a colon, the CRC line starts with "="; base64 has neither.
    body = [l.strip() for l in inner.decode("ascii", "replace").splitlines() if l.strip() and ":" not in l and not l.strip().startswith("=")]
    try:
        data = base64.b64decode("".join(body), validate=True)
    except Exception:
        fail("bad armour")
elif BEGIN in data:
    fail("an armoured key must be the whole file")
keys, i = [], 0
while i < len(data):
    h = data[i]; i += 1
    if not h & 0x80: fail("not an OpenPGP key")
    if h & 0x40:
        tag, n = h & 0x3F, data[i] if i < len(data) else 0; i += 1
        if 192 <= n < 224: n = ((n - 192) << 8) + data[i] + 192; i += 1
        elif n == 255: n = int.from_bytes(data[i:i + 4], "big"); i += 4
        elif n >= 224: fail("partial packet")
    else:
        tag, size = (h >> 2) & 15, [1, 2, 4, 0][h & 3]
        if not size: fail("indeterminate packet")
        n = int.from_bytes(data[i:i + size], "big"); i += size
    packet = data[i:i + n]; i += n
    if len(packet) != n: fail("truncated key")
    if tag == 6:
        if packet[:1] == b"\\x04": keys.append(hashlib.sha1(b"\\x99" + n.to_bytes(2, "big") + packet).hexdigest().upper())
        elif packet[:1] == b"\\x06": keys.append(hashlib.sha256(b"\\x9b" + n.to_bytes(4, "big") + packet).hexdigest().upper())
        else: fail("unsupported key version")
if len(keys) != 1: fail("the file holds %d primary keys, expected exactly one" % len(keys))
if keys[0] != sys.argv[2]: fail("fingerprint %s is not the pinned %s" % (keys[0], sys.argv[2]))
open(sys.argv[3], "wb").write(data)
`;

/**
 * POSIX sh program: `sh -c SCRIPT sh URL KEYRING [FINGERPRINT CHECK]`. Downloads URL beside KEYRING
 * with curl (else wget); with a FINGERPRINT, runs CHECK on it, which writes the checked key (binary;
 * KEYRING is then a `.gpg`) — only that reaches apt, never the download itself. Without a fingerprint
 * the URL is https (the renderer insists) and a redirect to plain http is refused too
 * (`--proto-redir`; wget: none followed).
 */
export const FETCH_KEY_SCRIPT = [
  'set -e; k="$2"; t="$2.part"; mkdir -p "${k%/*}"',
  'if [ -n "$3" ]; then c=""; w=""; else c="--proto =https --proto-redir =https"; w="--max-redirect=0"; fi',
  '{ curl -fsSL $c -o "$t" "$1" || wget -q $w -O "$t" "$1"; } || { rm -f "$t"; exit 1; }',
  'if [ -z "$3" ]; then mv -f "$t" "$k"; exit 0; fi',
  'python3 -c "$4" "$t" "$3" "$t.checked" || { rm -f "$t" "$t.checked"; exit 1; }',
  'rm -f "$t"; mv -f "$t.checked" "$k"',
].join('\n');
