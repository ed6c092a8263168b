#!/bin/sh
# mammatus vendor-data part: a Consul client agent that joins the cluster's Consul servers.
#
# cloud-init runs this once per instance as a vendor script (module scripts_vendor, after the
# user's packages): a user's own runcmd or write_files cannot replace it. It is idempotent: it
# installs consul only when the command is missing, writes its config only when the content
# differs, and restarts consul only when one of those changed something.
#
# The metadata service renders the config (JSON, with the datacenter, the controllers' addresses
# to join, the gossip key and this instance's name and address) and fills every @@NAME@@ with a
# single-quoted shell word (see src/metadata/vendor-data.ts).
set -u
PART=consul
. ./lib.sh

CONSUL_CONFIG=@@CONSUL_CONFIG@@

# Beside the package's own consul.hcl: consul reads every *.hcl and *.json in /etc/consul.d.
CONFIG_FILE=/etc/consul.d/mammatus.json

ensure_package consul consul
case $? in
1) exit 0 ;;
2) fail "cannot install consul" ;;
esac

# 640 and group consul: the file holds the gossip key, and the package runs consul as user consul.
put_file "$CONFIG_FILE" 640 "$CONSUL_CONFIG" consul || fail "cannot write $CONFIG_FILE"
if [ "$CHANGED" = 0 ]; then
	log "nothing changed"
	exit 0
fi
activate consul.service || fail "cannot enable or restart consul.service"
exit 0
