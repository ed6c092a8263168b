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
# dig and curl for the commands it prints. Without root there is no demo to set up.
DEMO=(lxd debootstrap dnsutils curl)
# --tests adds what only the tests use: the package tests build, lint, sign and install the .deb;
# busybox is their DHCP client, cloud-init's own readers and the AWS CLI their real clients;
# ssh-keygen (openssh-client, above) checks operator signatures both ways; openssh-server's sshd is the real
# host `mammatus node add`'s SSH layer is tested against (on a loopback port, its own config).
TESTS=(lintian apt-utils gnupg dpkg-dev busybox cloud-init awscli openssh-server)
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
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
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
