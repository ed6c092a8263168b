#!/usr/bin/env bash
# Installs what mammatus needs on a Debian machine with Node 20: the Debian packages (when run as
# root; otherwise it prints the exact command), the npm dependencies, and the bundle.
#   scripts/setup.sh [--tests]
set -euo pipefail
cd "$(dirname "$0")/.."

# serf and nats-server run the cluster; dnsmasq-base (with dhcp_release from dnsmasq-utils),
# iptables and iproute2 are the gateway's tools; openssh-client's ssh-keygen makes the local
# cluster's operator key (it signs events and `mammatus.leases` asks).
PACKAGES=(serf nats-server dnsmasq-base dnsmasq-utils iptables iproute2 procps openssh-client)
# The local cluster's demo as root: LXD for the compute node, debootstrap for its instance image,
# dig and curl for the commands it prints; tgt for the storage node's own tgtd (in a namespace of
# its own, installed with service starts denied, below), libiscsi-bin and jq for the iSCSI login
# it prints; haproxy for the gateway's load balancer the demo reaches from this host (installed with
# service starts denied, below); prometheus, prometheus-alertmanager and influxdb for the controller's
# monitoring store the README queries (their own daemons; the packages' services are not started).
# Without root there is no demo to set up.
DEMO=(lxd debootstrap dnsutils curl tgt libiscsi-bin jq haproxy prometheus prometheus-alertmanager influxdb)
# --tests adds what only the tests use: the package tests build, lint, sign and install the .deb;
# busybox is their DHCP client, cloud-init's own readers and the AWS CLI their real clients;
# ssh-keygen (openssh-client, above) checks operator signatures both ways; openssh-server's sshd is the real
# host `mammatus node add`'s SSH layer is tested against (on a loopback port, its own config); tgt is the
# storage role's iSCSI target that its tests run for real (their own tgtd in a network namespace) and
# libiscsi-bin the userspace initiator they log in with (iscsi-ls, iscsi-inq, iscsi-test-cu, iscsi-perf).
# The PXE tests boot QEMU machines (qemu-system-x86 with its iPXE NIC ROMs, qemu-utils for disks,
# ovmf for UEFI, ipxe for the snponly.efi that OVMF fetches by TFTP) from the boot image that
# scripts/build-boot-image.sh packs with mksquashfs (squashfs-tools). caddy is the controller's CA
# backend the CA tests run for real (their own caddy; installed with service starts denied, below),
# lego and certbot the ACME clients they get certificates with. haproxy is the gateway's load
# balancer its tests run for real (their own haproxy; installed with service starts denied, below);
# prometheus (with promtool), prometheus-alertmanager (with amtool) and influxdb the monitoring stack.
TESTS=(lintian apt-utils gnupg dpkg-dev busybox cloud-init awscli openssh-server tgt libiscsi-bin
  qemu-system-x86 qemu-utils ovmf ipxe squashfs-tools caddy lego certbot haproxy openssl
  prometheus prometheus-alertmanager influxdb)
if [ "${1:-}" = "--tests" ]; then
  PACKAGES+=("${DEMO[@]}" "${TESTS[@]}")
elif [ "$(id -u)" = 0 ]; then
  PACKAGES+=("${DEMO[@]}")
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing with apt: ${missing[*]}"
    apt-get update
    # tgt's, caddy's, haproxy's and the monitoring packages would start a tgtd on the host's port 3260,
    # a caddy or haproxy on port 80, a prometheus, alertmanager or influxd on their default ports:
    # install them with service starts denied
    # (policy-rc.d exit 101), in a call of its own so the other packages' services start as usual.
    quiet=() others=()
    for p in "${missing[@]}"; do case "$p" in tgt | caddy | haproxy | prometheus | prometheus-alertmanager | influxdb) quiet+=("$p") ;; *) others+=("$p") ;; esac; done
    if [ ${#others[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${others[@]}"; fi
    if [ ${#quiet[@]} -gt 0 ]; then
      if [ -e /usr/sbin/policy-rc.d ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${quiet[@]}"
      else
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${quiet[@]}" || { rm -f /usr/sbin/policy-rc.d; exit 1; }
        rm -f /usr/sbin/policy-rc.d
      fi
    fi
  else
    echo "Missing Debian packages: ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    if ! command -v serf >/dev/null || ! command -v nats-server >/dev/null; then exit 1; fi
  fi
fi

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("mammatus needs Node >= 20.19, this is "+process.version); process.exit(1) }'
# npm ci only when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
