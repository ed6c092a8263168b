# mammatus vendor-data helpers: cloud-init/vendor-data/lib.sh.
# The renderer inlines this file where a part says `. ./lib.sh`, so every part that cloud-init
# runs is a single self-contained script. POSIX sh only: the parts run under dash on Debian.
#
# Every path a part writes is under $MAMMATUS_ROOT (unset on a real instance), and every tool is
# looked up in PATH, so a test can run a part against a temporary directory with fake tools.

ROOT=${MAMMATUS_ROOT:-}
CHANGED=0
WROTE=0

log() { printf 'mammatus-%s: %s\n' "$PART" "$*" >&2; }

fail() {
	log "error: $*"
	exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# put_file PATH MODE CONTENT [GROUP]: writes CONTENT plus a newline to $ROOT/PATH only when the file
# differs. It sets WROTE=1 (and CHANGED=1) when it wrote. Returns non-zero only on an error.
put_file() {
	_dst=$ROOT$1
	WROTE=0
	if [ -f "$_dst" ] && printf '%s\n' "$3" | cmp -s - "$_dst"; then
		[ "$(stat -c %a "$_dst")" = "$2" ] || chmod "$2" "$_dst"
		return
	fi
	mkdir -p "$(dirname "$_dst")" || return 1
	_tmp=$_dst.mammatus-new
	# umask 077: a secret is never readable by others, not even before the chmod below.
	if ! (umask 077 && printf '%s\n' "$3" >"$_tmp"); then
		rm -f "$_tmp"
		return 1
	fi
	# The service may run as its own user (consul does): let its group read the file.
	if [ -n "${4:-}" ] && getent group "$4" >/dev/null 2>&1; then chgrp "$4" "$_tmp"; fi
	# Rename over the old file, so a service never reads a half-written config.
	if ! { chmod "$2" "$_tmp" && mv -f "$_tmp" "$_dst"; }; then
		rm -f "$_tmp"
		return 1
	fi
	WROTE=1
	CHANGED=1
	log "wrote $1"
}

apt_has() { apt-cache show "$1" >/dev/null 2>&1; }

# can_install COMMAND PACKAGE: true when COMMAND is there or apt can install PACKAGE; else says why
# (the part should then skip: a missing optional agent must not fail the boot).
can_install() {
	have "$1" && return 0
	if ! have apt-get || ! have apt-cache; then
		log "$1 is not installed and this system has no apt: skipping"
		return 1
	fi
	apt_has "$2" && return 0
	# The package lists may predate the repository that carries the package.
	apt-get update -q >&2 || log "apt-get update failed"
	apt_has "$2" && return 0
	log "$1 is not installed and apt knows no package '$2' (add the repository that has it): skipping"
	return 1
}

# ensure_package COMMAND PACKAGE: installs PACKAGE with apt when COMMAND is missing.
# Returns 0 when COMMAND is there, 1 when it cannot be had (see can_install), 2 when apt-get failed.
ensure_package() {
	can_install "$1" "$2" || return 1
	have "$1" && return 0
	log "installing $2"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "$2" >&2; then
		log "apt-get install $2 failed"
		return 2
	fi
	CHANGED=1
	if ! have "$1"; then
		log "package $2 is installed but there is still no $1 command"
		return 2
	fi
}

systemd_running() { [ -d "$ROOT/run/systemd/system" ]; }

# activate UNIT: enables UNIT and restarts it. --no-block because a part runs inside
# cloud-final.service: waiting there for a unit ordered after cloud-final would hang the boot.
activate() {
	if ! have systemctl; then
		log "no systemctl: enable and start $1 yourself"
		return 0
	fi
	systemctl enable "$1" >&2 || return 1
	if systemd_running; then
		systemctl --no-block restart "$1" || return 1
		log "restarting $1"
	else
		log "systemd is not running: $1 enabled, not started"
	fi
}
# --- end of lib.sh ---
