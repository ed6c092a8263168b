#!/bin/sh
# mammatus vendor-data part: Telegraf sends this instance's basic metrics to the controllers' InfluxDB.
#
# cloud-init runs this once per instance as a vendor script (module scripts_vendor, after the
# user's packages): a user's own runcmd or write_files cannot replace it. It is idempotent: it
# installs telegraf only when the command is missing, writes its config only when the content
# differs, and restarts telegraf only when one of those changed something.
#
# The metadata service renders the config (TOML: global tags with the instance's id and name, one
# [[outputs.influxdb]] per controller whose metrics store is InfluxDB, a few inputs) and fills every
# @@NAME@@ with a single-quoted shell word (see src/metadata/vendor-data.ts, docs/monitoring.md).
set -u
PART=telegraf
. ./lib.sh

TELEGRAF_CONFIG=@@TELEGRAF_CONFIG@@

# A drop-in: the package's own telegraf.conf is a conffile and stays as the package shipped it.
CONFIG_FILE=/etc/telegraf/telegraf.d/mammatus.conf

ensure_package telegraf telegraf
case $? in
1) exit 0 ;;
2) fail "cannot install telegraf" ;;
esac

# World-readable is fine: the settings refuse credentials in the InfluxDB URL.
put_file "$CONFIG_FILE" 644 "$TELEGRAF_CONFIG" || fail "cannot write $CONFIG_FILE"
if [ "$CHANGED" = 0 ]; then
	log "nothing changed"
	exit 0
fi
activate telegraf.service || fail "cannot enable or restart telegraf.service"
exit 0
