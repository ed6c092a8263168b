#!/usr/bin/env bash
# Builds a signed flat apt repository from .deb files, for PXE-booted hosts and nodes to install
# mammatus-agent from a gateway or controller over plain HTTP (apt checks the signature).
#
#   scripts/repo-build.sh --out DIR [--gnupg-home DIR] [--key-name NAME] [--valid-for TIME]
#                         [--key-expiry WHEN] PKG.deb...
#   scripts/repo-build.sh resign --out DIR [--gnupg-home DIR] [--key-name NAME] [--valid-for TIME]
#
# DIR receives the packages, Packages(.gz), Release, InRelease, Release.gpg and the public key
# (mammatus-archive-keyring.gpg binary, mammatus-archive-keyring.asc armoured). The private key lives
# in --gnupg-home (default: DIR/../gnupg, never inside DIR, which is served); it is created with an
# ed25519 signing key on first use (expiring after --key-expiry, default 2y) and reused after, so
# clients keep trusting the repository. Release carries Date and Valid-Until (--valid-for: N, Nd,
# Nh, Nm or Ns; a bare number is days; default 30d): apt refuses a Release past Valid-Until, so a
# stale or replayed copy stops working. `resign` refreshes Date and Valid-Until of the packages
# already in DIR and signs again, without rebuilding or copying any package: run it from cron well
# within the lifetime (e.g. weekly for 30d).
set -euo pipefail

mode=build
if [ "${1:-}" = resign ]; then mode=resign; shift; fi
out='' gnupg='' name='Mammatus Repository Signing' valid_for=30d key_expiry=2y
debs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --gnupg-home) gnupg=$2; shift 2 ;;
    --key-name) name=$2; shift 2 ;;
    --valid-for) valid_for=$2; shift 2 ;;
    --key-expiry) key_expiry=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "repo-build: unknown option $1" >&2; exit 2 ;;
    *) debs+=("$1"); shift ;;
  esac
done
usage() {
  echo "usage: repo-build.sh --out DIR [--gnupg-home DIR] [--valid-for TIME] PKG.deb..." >&2
  echo "       repo-build.sh resign --out DIR [--gnupg-home DIR] [--valid-for TIME]" >&2
  exit 2
}
[ -n "$out" ] || usage
if [ "$mode" = build ]; then [ ${#debs[@]} -gt 0 ] || usage; else [ ${#debs[@]} -eq 0 ] || usage; fi

# --valid-for in seconds; refused when it is not a positive whole number with an optional unit.
case "$valid_for" in
  *[!0-9smhd]* | '' | [smhd]*) echo "repo-build: --valid-for must be N, Nd, Nh, Nm or Ns (got '$valid_for')" >&2; exit 2 ;;
esac
n=${valid_for%[smhd]}
case "$n" in *[!0-9]* | '') echo "repo-build: --valid-for must be N, Nd, Nh, Nm or Ns (got '$valid_for')" >&2; exit 2 ;; esac
case "$valid_for" in
  *s) valid_s=$((10#$n)) ;;
  *m) valid_s=$((10#$n * 60)) ;;
  *h) valid_s=$((10#$n * 3600)) ;;
  *) valid_s=$((10#$n * 86400)) ;;
esac
[ "$valid_s" -gt 0 ] || { echo "repo-build: --valid-for must be more than 0" >&2; exit 2; }

for tool in apt-ftparchive gpg; do
  command -v "$tool" >/dev/null || { echo "repo-build: $tool is missing (apt-get install apt-utils gnupg)" >&2; exit 1; }
done

if [ "$mode" = resign ]; then
  [ -f "$out/Packages" ] || { echo "repo-build: $out/Packages is missing: build the repository first" >&2; exit 1; }
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
gnupg=${gnupg:-$(dirname "$out")/gnupg}
mkdir -p "$gnupg" && chmod 700 "$gnupg"
export GNUPGHOME=$gnupg

if ! gpg --batch --list-secret-keys "$name" >/dev/null 2>&1; then
  [ "$mode" = build ] || { echo "repo-build: no signing key '$name' in $gnupg" >&2; exit 1; }
  gpg --batch --passphrase '' --quick-gen-key "$name" ed25519 sign "$key_expiry" 2>/dev/null
fi
fpr=$(gpg --batch --with-colons --list-secret-keys "$name" | awk -F: '$1 == "fpr" { print $10; exit }')
# Field 2 of the pub line is the validity (e = expired), field 7 the expiry (seconds, empty = never).
pub=$(gpg --batch --with-colons --list-keys "$fpr" | awk -F: '$1 == "pub" { print $2 ":" $7; exit }')
expires=${pub#*:}
now=$(date +%s)
if [ "${pub%%:*}" = e ] || { [ -n "$expires" ] && [ "$expires" -le "$now" ]; }; then
  echo "repo-build: the signing key $fpr has expired; extend it (docs/install.md, \"Signing key\"):" >&2
  echo "  GNUPGHOME=$gnupg gpg --quick-set-expire $fpr 2y" >&2
  exit 1
fi
if [ -n "$expires" ] && [ "$expires" -lt $((now + valid_s)) ]; then
  echo "repo-build: warning: the signing key $fpr expires on $(date -u -d "@$expires" +%F), before this Release's Valid-Until; extend it now (docs/install.md, \"Signing key\")" >&2
elif [ -n "$expires" ] && [ "$expires" -lt $((now + 90 * 86400)) ]; then
  echo "repo-build: warning: the signing key $fpr expires on $(date -u -d "@$expires" +%F); extend it and give nodes the new public key before then" >&2
fi

if [ "$mode" = build ]; then
  cp -f "${debs[@]}" "$out/"
fi
cd "$out"
if [ "$mode" = build ]; then
  apt-ftparchive packages . > Packages
  gzip -9nkf Packages
fi
# Release is written outside the directory, and lists only the indices: never a Release or
# InRelease already there (a rebuild or a re-sign would otherwise hash the previous one).
release=$(mktemp)
trap 'rm -f "$release" "$release.in" "$release.gpg"' EXIT
apt-ftparchive \
  -o APT::FTPArchive::Release::Origin=mammatus \
  -o APT::FTPArchive::Release::Label=mammatus \
  -o APT::FTPArchive::Release::Suite=stable \
  -o APT::FTPArchive::Release::Codename=mammatus \
  -o APT::FTPArchive::Release::Description='mammatus packages' \
  -o APT::FTPArchive::Release::ValidTime="$valid_s" \
  -o APT::FTPArchive::Release::Default-Patterns=false \
  -o 'APT::FTPArchive::Release::Patterns::=Packages' \
  -o 'APT::FTPArchive::Release::Patterns::=Packages.gz' \
  release . > "$release"
# Signed beside the new Release, then moved in: a client never sees a Release with an old signature.
gpg --batch --yes --local-user "$fpr" --clearsign -o "$release.in" "$release"
gpg --batch --yes --local-user "$fpr" -abs -o "$release.gpg" "$release"
chmod 0644 "$release" "$release.in" "$release.gpg"
mv "$release.in" InRelease
mv "$release.gpg" Release.gpg
mv "$release" Release
gpg --batch --yes --export "$fpr" > mammatus-archive-keyring.gpg
gpg --batch --yes --armor --export "$fpr" > mammatus-archive-keyring.asc
valid_until=$(sed -n 's/^Valid-Until: //p' Release)
echo "repository in $out, signed by $fpr, valid until $valid_until"
