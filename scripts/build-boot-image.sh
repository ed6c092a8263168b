#!/usr/bin/env bash
# Builds the Debian live system a PXE-booted host runs (kernel, live-boot initrd, squashfs root with
# cloud-init, nodejs, serf) and caches it: a second run with the same inputs only prints the cached
# directory.
#
#   scripts/build-boot-image.sh [--cache-dir DIR] [--suite SUITE] [--mirror URL] [--kernel cloud|generic] [--force]
#
# Output: DIR/mammatus-boot-SUITE-ARCH-KERNEL-KEY/ holding vmlinuz, initrd.img, filesystem.squashfs,
# local-disk.efi (the loader an installed UEFI host is chained to)
# and SHA256SUMS (KEY hashes this script and its inputs, so changing any builds a new one). The
# directory is the only line on stdout; progress goes to stderr. Boot it with the kernel arguments
#   boot=live fetch=http://SERVER/filesystem.squashfs ds=nocloud-net;s=http://169.254.169.254/nocloud/
# (see docs/baremetal.md). Needs root, debootstrap, mksquashfs (squashfs-tools) and a Debian
# mirror (≈5–8 minutes). The system has no root password, no SSH password login and no apt source:
# the host gets its packages from the cluster's repository, which its seed configures.
#
# Environment: MAMMATUS_IMAGE_CACHE (default /var/cache/mammatus-images), MAMMATUS_BOOT_SUITE
# (trixie), MAMMATUS_IMAGE_MIRROR (http://deb.debian.org/debian), MAMMATUS_BOOT_KERNEL (cloud).
set -euo pipefail

cache=${MAMMATUS_IMAGE_CACHE:-/var/cache/mammatus-images}
suite=${MAMMATUS_BOOT_SUITE:-trixie}
mirror=${MAMMATUS_IMAGE_MIRROR:-http://deb.debian.org/debian}
kernel=${MAMMATUS_BOOT_KERNEL:-cloud}
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-dir) cache=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --kernel) kernel=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build-boot-image: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "build-boot-image: $*" >&2; }

case "$(dpkg --print-architecture)" in
  amd64) arch=amd64 ;;
  *) echo "build-boot-image: only amd64 is built today (this is $(dpkg --print-architecture))" >&2; exit 1 ;;
esac
# The cloud kernel has the virtual NICs (virtio-net, e1000) and disks and is a third of the size;
# real hardware with other NICs needs the generic one.
case "$kernel" in
  cloud) kpkg=linux-image-cloud-amd64 ;;
  generic) kpkg=linux-image-amd64 ;;
  *) echo "build-boot-image: --kernel is cloud or generic, not $kernel" >&2; exit 2 ;;
esac

# live-boot + busybox: the initrd fetches the squashfs over HTTP (fetch=) with busybox's wget.
# systemd-resolved, udev, dbus: as in the instance image (networkd DHCP, hostnamectl for cloud-init).
# nodejs, serf, procps, adduser: what mammatus-agent depends on, so the cluster repository only has
# to carry mammatus-agent. grub-*-bin + grub2-common (grub-install), gdisk, dosfstools, e2fsprogs:
# mammatus-install-to-disk partitions a disk and writes a boot loader for BIOS and EFI.
# openssh-server: `host register --ssh-key` logs in with a key (passwords are off, below).
PACKAGES=("$kpkg" live-boot busybox initramfs-tools zstd systemd-sysv udev dbus systemd-resolved iproute2
  netbase procps adduser cloud-init locales ca-certificates curl nodejs serf openssh-server
  grub-pc-bin grub-efi-amd64-bin grub2-common gdisk dosfstools e2fsprogs)
# The install-to-disk command the seed runs (scripts/boot-image/); it is part of the key.
install_cmd="$(dirname "$0")/boot-image/mammatus-install-to-disk"
[ -r "$install_cmd" ] || { echo "build-boot-image: $install_cmd is missing" >&2; exit 1; }
# The embedded config of local-disk.efi, the loader an installed UEFI host is chained to; part of the key.
local_cfg="$(dirname "$0")/boot-image/local-disk.cfg"
[ -r "$local_cfg" ] || { echo "build-boot-image: $local_cfg is missing" >&2; exit 1; }
key=$(cat "$0" "$install_cmd" "$local_cfg" <(echo "$suite $arch $kernel ${PACKAGES[*]}") | sha256sum | cut -c1-12)
name="mammatus-boot-$suite-$arch-$kernel-$key"
out="$cache/$name"
done_file="$out/SHA256SUMS"

if [ "$force" = 0 ] && [ -s "$done_file" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "build-boot-image: must run as root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-boot-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
command -v mksquashfs >/dev/null || { echo "build-boot-image: mksquashfs is missing (apt-get install squashfs-tools)" >&2; exit 1; }

mkdir -p "$cache"
# One build at a time per cache (two test runs starting together share the result).
exec 9>"$cache/.lock"
flock 9
if [ "$force" = 0 ] && [ -s "$done_file" ]; then
  log "built meanwhile: $out"
  echo "$out"
  exit 0
fi

work=$(mktemp -d "$cache/.build-boot-XXXXXX")
r="$work/rootfs"
step_pid=
cleanup() {
  # A step still running (the script was stopped) goes first: its process group is timeout's.
  if [ -n "$step_pid" ] && kill -0 "$step_pid" 2>/dev/null; then
    kill -TERM -- "-$step_pid" 2>/dev/null || true
    wait "$step_pid" 2>/dev/null || true
  fi
  # apt in the chroot runs with /proc, /sys and /dev mounted; a failure anywhere must not leave
  # them mounted (rm would then walk into the host's /dev).
  for m in dev/pts dev sys proc; do
    mountpoint -q "$r/$m" 2>/dev/null && { umount "$r/$m" 2>/dev/null || umount -l "$r/$m"; }
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
# Stopped by a signal, still clean up (the EXIT trap runs on exit).
trap 'exit 143' TERM
trap 'exit 130' INT

# Runs "$@" (a program, not a function) with a hard limit of $1 seconds and a progress line every
# 15 s (minutes without output look like a hang); its output goes to $work/$2.log, the tail of it
# on failure. timeout runs it in a process group of its own and stops all of it (apt's dpkg too).
bounded() {
  local limit=$1 what=$2 started=$SECONDS rc=0
  shift 2
  timeout -k 10 "$limit" "$@" >"$work/$what.log" 2>&1 &
  step_pid=$!
  while kill -0 "$step_pid" 2>/dev/null; do
    for _ in $(seq 15); do kill -0 "$step_pid" 2>/dev/null && sleep 1; done
    kill -0 "$step_pid" 2>/dev/null || break
    log "$what: $((SECONDS - started)) s, rootfs $({ du -sm "$r" 2>/dev/null || true; } | cut -f1) MB"
  done
  wait "$step_pid" || rc=$?
  step_pid=
  if [ "$rc" != 0 ]; then
    tail -n 30 "$work/$what.log" >&2
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then log "$what: no end after $limit s, stopped"; else log "$what failed ($rc; last 30 lines above)"; fi
    return 1
  fi
  log "$what done in $((SECONDS - started)) s"
}

started=$SECONDS
log "debootstrap $suite from $mirror into $r"
# cloud-init is not in --include: debootstrap cannot resolve python3-cryptography's virtual dependency.
bounded 1200 debootstrap debootstrap --variant=minbase --arch="$arch" "$suite" "$r" "$mirror"

mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount --bind /dev "$r/dev"
mount --bind /dev/pts "$r/dev/pts"
cp /etc/resolv.conf "$r/etc/resolv.conf"
# No service starts in the chroot (exit 101 = "not allowed").
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
# initrd: zstd is quicker to unpack under TCG than xz and smaller than gzip; "most" keeps every NIC
# and disk driver the kernel has (the initrd must fetch the root over whatever NIC the host has).
mkdir -p "$r/etc/initramfs-tools/conf.d"
printf 'MODULES=most\nCOMPRESS=zstd\n' >"$r/etc/initramfs-tools/conf.d/mammatus.conf"
chroot_cmd=(chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
in_chroot() { "${chroot_cmd[@]}" "$@"; }
bounded 300 apt-update "${chroot_cmd[@]}" apt-get update
bounded 1800 apt-install "${chroot_cmd[@]}" apt-get install -y --no-install-recommends "${PACKAGES[@]}"
in_chroot dpkg --audit >&2 || { log "packages left unconfigured"; exit 1; }

log "configuring the rootfs"
node_major=$(in_chroot node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { log "nodejs $node_major is older than 20"; exit 1; }
# A seed in the image would win over the one named on the kernel command line.
rm -rf "$r/var/lib/cloud/seed" "$r/var/lib/cloud/instances" "$r/var/lib/cloud/instance"
# The live root is an overlay in RAM: nothing to grow (cloud-init would warn about /dev/overlay). The
# install-to-disk step removes this file from the installed copy.
printf '# mammatus boot image: the live root is an overlay in RAM, no partition to grow.\ngrowpart: {mode: "off"}\nresize_rootfs: false\n' \
  >"$r/etc/cloud/cloud.cfg.d/05-mammatus-live.cfg"
# Fallback when cloud-init renders no network config: DHCP on the first wired NIC, keyed by MAC so
# the gateway's reservation and the lease agree.
cat >"$r/etc/systemd/network/90-mammatus-wired.network" <<'EOF'
# mammatus boot image: DHCP on wired NICs unless cloud-init rendered its own network config.
[Match]
Name=en* eth*

[Network]
DHCP=ipv4

[DHCPv4]
ClientIdentifier=mac
EOF
install -m 0755 "$install_cmd" "$r/usr/local/sbin/mammatus-install-to-disk"
in_chroot systemctl enable systemd-networkd.service systemd-resolved.service >&2
# No passwords: root is locked, sshd takes keys only.
in_chroot usermod -p '*' root
mkdir -p "$r/etc/ssh/sshd_config.d"
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' \
  >"$r/etc/ssh/sshd_config.d/50-mammatus.conf"
# Each boot gets its own identity (cloud-init makes the SSH host keys).
: >"$r/etc/machine-id"
rm -f "$r/var/lib/dbus/machine-id" "$r"/etc/ssh/ssh_host_* "$r/etc/hostname"
sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$r/etc/locale.gen"
in_chroot locale-gen >&2
echo 'LANG=en_US.UTF-8' >"$r/etc/default/locale"
# No Debian mirror: a test host has no internet, and a real one takes its packages from the cluster.
rm -f "$r/etc/apt/sources.list" "$r"/etc/apt/sources.list.d/*
in_chroot apt-get clean
rm -f "$r/usr/sbin/policy-rc.d"
rm -rf "$r"/var/lib/apt/lists/* "$r"/var/log/*.log "$r"/var/cache/debconf/*-old
ln -sf ../run/systemd/resolve/stub-resolv.conf "$r/etc/resolv.conf"
# local-disk.efi: GRUB with the config above built in (docs/baremetal.md, "Install to disk"), made
# with the chroot's grub-efi-amd64-bin so the build host needs no GRUB of its own.
mkdir -p "$r/tmp/local-disk"
cp "$local_cfg" "$r/tmp/local-disk/grub.cfg"
in_chroot grub-mkstandalone -O x86_64-efi -o /tmp/local-disk/local-disk.efi \
  --modules="part_gpt part_msdos fat ext2 search search_fs_file search_label chain configfile echo sleep test" \
  "boot/grub/grub.cfg=/tmp/local-disk/grub.cfg" >&2
mkdir -p "$work/out"
mv "$r/tmp/local-disk/local-disk.efi" "$work/out/local-disk.efi"
rm -rf "$r/tmp/local-disk"
for m in dev/pts dev sys proc; do umount "$r/$m"; done
# Nothing may stay mounted in the rootfs: mksquashfs would read /proc or /dev for ever.
if findmnt -rn -o TARGET | grep -q "^$r/"; then log "still mounted in the rootfs: $(findmnt -rn -o TARGET | grep "^$r/" | tr '\n' ' ')"; exit 1; fi

log "packing"
mkdir -p "$work/out"
cp "$(readlink -f "$r/vmlinuz")" "$work/out/vmlinuz"
cp "$(readlink -f "$r/initrd.img")" "$work/out/initrd.img"
# /boot stays in the squashfs (≈30 MB): the install-to-disk step copies the system with its kernel.
# zstd: unpacks faster than xz under TCG, for a few MB more.
bounded 1200 mksquashfs mksquashfs "$r" "$work/out/filesystem.squashfs" -comp zstd -noappend
(cd "$work/out" && sha256sum vmlinuz initrd.img filesystem.squashfs local-disk.efi >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
rm -rf "$out"
mv "$work/out" "$out"
chmod 755 "$out"
log "done in $((SECONDS - started)) s: $out ($(du -sh "$out" | cut -f1))"
echo "$out"
