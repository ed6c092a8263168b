#!/usr/bin/env bash
# Builds a signed flat apt repository from .deb files, for PXE-booted hosts and nodes to install
# mammatus-agent from a gateway or controller over plain HTTP (apt checks the signature).
#
#   scripts/repo-build.sh --out DIR [--gnupg-home DIR] [--key-name NAME] PKG.deb...
#
# DIR receives the packages, Packages(.gz), Release, InRelease, Release.gpg and the public key
# (mammatus-archive-keyring.gpg binary, mammatus-archive-keyring.asc armoured). The private key lives
# in --gnupg-home (default: DIR/../gnupg, never inside DIR, which is served); it is created with an
# ed25519 signing key on first use and reused after, so clients keep trusting the repository.
set -euo pipefail

out='' gnupg='' name='Mammatus Repository Signing'
debs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --gnupg-home) gnupg=$2; shift 2 ;;
    --key-name) name=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "repo-build: unknown option $1" >&2; exit 2 ;;
    *) debs+=("$1"); shift ;;
  esac
done
[ -n "$out" ] && [ ${#debs[@]} -gt 0 ] || { echo "usage: repo-build.sh --out DIR [--gnupg-home DIR] PKG.deb..." >&2; exit 2; }
for tool in apt-ftparchive gpg; do
  command -v "$tool" >/dev/null || { echo "repo-build: $tool is missing (apt-get install apt-utils gnupg)" >&2; exit 1; }
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
gnupg=${gnupg:-$(dirname "$out")/gnupg}
mkdir -p "$gnupg" && chmod 700 "$gnupg"
export GNUPGHOME=$gnupg

if ! gpg --batch --list-secret-keys "$name" >/dev/null 2>&1; then
  gpg --batch --passphrase '' --quick-gen-key "$name" ed25519 sign never 2>/dev/null
fi
fpr=$(gpg --batch --with-colons --list-secret-keys "$name" | awk -F: '$1 == "fpr" { print $10; exit }')

cp -f "${debs[@]}" "$out/"
cd "$out"
apt-ftparchive packages . > Packages
gzip -9nkf Packages
# Release must be written outside the directory, or it lists itself half-written.
release=$(mktemp)
trap 'rm -f "$release"' EXIT
apt-ftparchive \
  -o APT::FTPArchive::Release::Origin=mammatus \
  -o APT::FTPArchive::Release::Label=mammatus \
  -o APT::FTPArchive::Release::Suite=stable \
  -o APT::FTPArchive::Release::Codename=mammatus \
  -o APT::FTPArchive::Release::Description='mammatus packages' \
  release . > "$release"
mv "$release" Release
rm -f InRelease Release.gpg
gpg --batch --yes --local-user "$fpr" --clearsign -o InRelease Release
gpg --batch --yes --local-user "$fpr" -abs -o Release.gpg Release
gpg --batch --yes --export "$fpr" > mammatus-archive-keyring.gpg
gpg --batch --yes --armor --export "$fpr" > mammatus-archive-keyring.asc
echo "repository in $out, signed by $fpr"
