#!/usr/bin/env bash
# Builds a small Debian container image for LXD with cloud-init, for the compute role's tests and
# demos, and caches it: a second run with the same inputs only prints the cached tarball's path.
#
#   scripts/build-image.sh [--cache-dir DIR] [--suite SUITE] [--mirror URL] [--force]
#
# Output: an LXD "unified" image tarball (metadata.yaml + rootfs/ + templates/), gzip, at
# DIR/mammatus-debian-SUITE-ARCH-KEY.tar.gz (KEY hashes every input, so changing this script,
# the suite or cloud-init/cloud.cfg.d/90-mammatus.cfg builds a new one), with KEY.sha256 beside
# it (the LXD fingerprint of a unified image is the tarball's sha256). The path is the only line
# on stdout; progress goes to stderr. Import it with `lxc image import PATH --alias ALIAS` or the
# role's `mammatus image import`. Needs root, debootstrap and a Debian mirror (≈3–5 minutes).
#
# Environment: MAMMATUS_IMAGE_CACHE (default /var/cache/mammatus-images), MAMMATUS_IMAGE_SUITE
# (bookworm), MAMMATUS_IMAGE_MIRROR (http://deb.debian.org/debian).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

cache=${MAMMATUS_IMAGE_CACHE:-/var/cache/mammatus-images}
suite=${MAMMATUS_IMAGE_SUITE:-bookworm}
mirror=${MAMMATUS_IMAGE_MIRROR:-http://deb.debian.org/debian}
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-dir) cache=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "build-image: $*" >&2; }

# udev: without it systemd-networkd waits forever for the NIC to be "initialised" (/sys is rw in
# LXD containers). python3-cffi-backend: cloud-init -> python3-cryptography needs a virtual
# package debootstrap cannot resolve. locales: cloud-init's locale module calls update-locale.
# dbus: hostnamectl (cloud-init's set_hostname on systemd). curl: the tests ask 169.254.169.254.
# systemd-resolved: DNS from DHCP into /etc/resolv.conf. openssh-server: --ssh-key is useful.
PACKAGES=(systemd-sysv udev dbus iproute2 netbase procps cloud-init python3-cffi-backend locales
  ca-certificates curl systemd-resolved openssh-server)
cfg="$here/cloud-init/cloud.cfg.d/90-mammatus.cfg"

case "$(dpkg --print-architecture)" in
  amd64) arch=amd64 lxd_arch=x86_64 ;;
  arm64) arch=arm64 lxd_arch=aarch64 ;;
  *) echo "build-image: unsupported architecture $(dpkg --print-architecture)" >&2; exit 1 ;;
esac
key=$(cat "$0" "$cfg" <(echo "$suite $arch ${PACKAGES[*]}") | sha256sum | cut -c1-12)
name="mammatus-debian-$suite-$arch-$key"
out="$cache/$name.tar.gz"

if [ "$force" = 0 ] && [ -s "$out" ] && [ -s "$out.sha256" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "build-image: must run as root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

mkdir -p "$cache"
# One build at a time per cache (two test runs starting together share the result).
exec 9>"$cache/.lock"
flock 9
if [ "$force" = 0 ] && [ -s "$out" ] && [ -s "$out.sha256" ]; then
  log "built meanwhile: $out"
  echo "$out"
  exit 0
fi

work=$(mktemp -d "$cache/.build-XXXXXX")
cleanup() {
  # A failed debootstrap may leave /proc or /sys mounted inside the rootfs.
  for m in proc sys dev/pts dev; do
    mountpoint -q "$work/rootfs/$m" 2>/dev/null && umount -l "$work/rootfs/$m"
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

started=$SECONDS
log "debootstrap $suite from $mirror into $work/rootfs (a few minutes)"
include=$(IFS=,; echo "${PACKAGES[*]}")
debootstrap --variant=minbase --arch="$arch" --include="$include" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 &
deboot=$!
# A progress line every 15 s: minutes without output look like a hang.
while kill -0 "$deboot" 2>/dev/null; do
  for _ in $(seq 15); do kill -0 "$deboot" 2>/dev/null && sleep 1; done
  kill -0 "$deboot" 2>/dev/null || break
  size=$(du -sm "$work/rootfs" 2>/dev/null | cut -f1 || true)
  step=$(grep -E "^I: " "$work/debootstrap.log" | tail -n 1 | cut -c4-60 || true)
  log "debootstrap: $((SECONDS - started)) s, rootfs ${size:-0} MB${step:+, $step}"
done
if ! wait "$deboot"; then
  tail -n 30 "$work/debootstrap.log" >&2
  log "debootstrap failed (full log above, last 30 lines)"
  exit 1
fi
log "debootstrap done in $((SECONDS - started)) s"
r="$work/rootfs"
# Nothing may be left half-configured (the cffi-backend problem shows up here).
chroot "$r" dpkg --audit >&2 || { log "packages left unconfigured"; exit 1; }

log "configuring the rootfs"
install -D -m 0644 "$cfg" "$r/etc/cloud/cloud.cfg.d/90-mammatus.cfg"
# A seed in the image would win over the metadata service.
rm -rf "$r/var/lib/cloud/seed" "$r/var/lib/cloud/instances" "$r/var/lib/cloud/instance"
# Fallback when cloud-init renders no network config: DHCP on eth0, keyed by MAC so the gateway's
# MAC reservation and the lease agree; send the host name so dnsmasq can name the lease.
cat >"$r/etc/systemd/network/90-mammatus-eth0.network" <<'EOF'
# mammatus image: DHCP on eth0 unless cloud-init rendered its own network config.
[Match]
Name=eth0

[Network]
DHCP=ipv4

[DHCPv4]
ClientIdentifier=mac
EOF
chroot "$r" systemctl enable systemd-networkd.service systemd-resolved.service >&2
# binfmt_misc cannot be set up from inside a container: the unit fails and the system reports
# "degraded" for nothing.
chroot "$r" systemctl mask systemd-binfmt.service >&2
# Each instance gets its own identity at first boot.
: >"$r/etc/machine-id"
rm -f "$r/var/lib/dbus/machine-id" "$r"/etc/ssh/ssh_host_*
sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$r/etc/locale.gen"
chroot "$r" locale-gen >&2
echo 'LANG=en_US.UTF-8' >"$r/etc/default/locale"
cat >"$r/etc/apt/sources.list" <<EOF
deb $mirror $suite main
EOF
chroot "$r" apt-get clean
rm -rf "$r"/var/lib/apt/lists/* "$r"/var/log/*.log "$r"/var/cache/debconf/*-old "$r/etc/hostname"
# The host's resolv.conf leaks in through debootstrap; systemd-resolved owns it in the image.
ln -sf ../run/systemd/resolve/stub-resolv.conf "$r/etc/resolv.conf"

# LXD renders these at create/copy, so every container starts with its own name.
mkdir -p "$work/templates"
printf '{{ container.name }}\n' >"$work/templates/hostname.tpl"
printf '127.0.0.1 localhost\n127.0.1.1 {{ container.name }}\n::1 localhost ip6-localhost ip6-loopback\n' >"$work/templates/hosts.tpl"
cat >"$work/metadata.yaml" <<EOF
architecture: $lxd_arch
creation_date: $(date +%s)
properties:
  description: Debian $suite with cloud-init (mammatus $key)
  os: debian
  release: $suite
  variant: cloud
  mammatus.key: "$key"
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy]
    template: hosts.tpl
EOF

log "packing $out"
tar -C "$work" --numeric-owner --xattrs --xattrs-include='*' -czf "$work/image.tar.gz" metadata.yaml templates rootfs
sha256sum "$work/image.tar.gz" | cut -d' ' -f1 >"$work/image.sha256"
mv "$work/image.sha256" "$out.sha256"
mv "$work/image.tar.gz" "$out"
log "done in $((SECONDS - started)) s: $out ($(du -h "$out" | cut -f1), fingerprint $(cat "$out.sha256"))"
echo "$out"
