#!/bin/sh
# mammatus vendor-data part: a Vault agent that logs in with AppRole and keeps a token in
# /run/vault-agent/token for this instance's services.
#
# No long-lived secret travels in vendor-data: the metadata service puts in the role_id (not a
# secret on its own) and a response-wrapping token for a fresh secret_id that works once, from this
# instance's address only. The token itself works once and expires within minutes, so a neighbour
# that read this vendor-data first makes the unwrap below fail, which says so loudly.
#
# cloud-init runs this once per instance as a vendor script (module scripts_vendor). It is
# idempotent: it unwraps a given token only once (it keeps the token's digest), installs vault only
# when the command is missing, writes files only when they differ, and restarts the agent only
# when one of those changed something. Every @@NAME@@ is filled with a single-quoted shell word by
# the metadata service (see src/metadata/vendor-data.ts).
set -u
PART=vault
. ./lib.sh

VAULT_ADDR=@@VAULT_ADDR@@
VAULT_ROLE_ID=@@VAULT_ROLE_ID@@
VAULT_WRAPPED_SECRET_ID=@@VAULT_WRAPPED_SECRET_ID@@
VAULT_AGENT_CONFIG=@@VAULT_AGENT_CONFIG@@

CONF_DIR=/etc/vault-agent.d
UNIT=mammatus-vault-agent.service
# The digest of the last wrapping token unwrapped, so a second run does not spend a dead token.
UNWRAPPED=/var/lib/mammatus/vendor-data/vault-unwrapped

if [ -z "$VAULT_WRAPPED_SECRET_ID" ]; then
	log "vendor-data carries no wrapped secret_id (the metadata service could not mint one): Vault agent not set up"
	exit 0
fi

# unwrap: prints the secret_id inside the wrapping token, or fails.
unwrap() {
	_url="${VAULT_ADDR%/}/v1/sys/wrapping/unwrap"
	if have curl; then
		# The token goes in on stdin (-H @-): in argv, any local user could read it with ps.
		_answer=$(printf 'X-Vault-Token: %s\n' "$VAULT_WRAPPED_SECRET_ID" |
			curl -sS -f --connect-timeout 10 --max-time 30 -X POST -H @- "$_url") || return 1
	elif have wget; then
		# GNU wget reads the header from a wgetrc file instead (again not argv).
		_rc=$(mktemp) || return 1
		printf 'header = X-Vault-Token: %s\n' "$VAULT_WRAPPED_SECRET_ID" >"$_rc"
		_answer=$(wget -q -O - --timeout=30 --config="$_rc" --post-data= "$_url")
		_status=$?
		rm -f "$_rc"
		[ "$_status" = 0 ] || return 1
	else
		log "neither curl nor wget is installed"
		return 1
	fi
	# Vault answers one line of JSON; a secret_id is a UUID, so no JSON escapes can occur in it.
	printf '%s\n' "$_answer" | sed -n 's/.*"secret_id"[[:space:]]*:[[:space:]]*"\([A-Za-z0-9-]*\)".*/\1/p' | head -n 1
}

# Spend the single-use token only if there will be an agent to use the secret_id.
can_install vault vault || exit 0

# Unwrap before installing: the token's few minutes started when the metadata service minted it,
# and the package install below can take minutes on a small board.
DIGEST=$(printf '%s' "$VAULT_WRAPPED_SECRET_ID" | sha256sum | cut -d ' ' -f 1)
if [ -f "$ROOT$UNWRAPPED" ] && [ "$(cat "$ROOT$UNWRAPPED")" = "$DIGEST" ]; then
	log "the wrapped secret_id was unwrapped before"
else
	SECRET_ID=$(unwrap)
	if [ -z "$SECRET_ID" ]; then
		fail "cannot unwrap the secret_id at $VAULT_ADDR: the token expired, or was already used (then someone else read this instance's vendor-data)"
	fi
	put_file "$CONF_DIR/secret-id" 600 "$SECRET_ID" || fail "cannot write $CONF_DIR/secret-id"
	put_file "$UNWRAPPED" 600 "$DIGEST" || fail "cannot write $UNWRAPPED"
fi

ensure_package vault vault
case $? in
1) exit 0 ;;
2) fail "cannot install vault" ;;
esac

put_file "$CONF_DIR/agent.hcl" 644 "$VAULT_AGENT_CONFIG" || fail "cannot write $CONF_DIR/agent.hcl"
put_file "$CONF_DIR/role-id" 600 "$VAULT_ROLE_ID" || fail "cannot write $CONF_DIR/role-id"

# Our own unit: the package's vault.service runs a Vault server, not an agent.
VAULT_BIN=$(command -v vault)
UNIT_TEXT=$(cat <<UNIT
[Unit]
Description=Vault agent of this instance (mammatus vendor-data)
Documentation=https://developer.hashicorp.com/vault/docs/agent-and-proxy/agent
Wants=network-online.target
After=network-online.target
ConditionPathExists=$CONF_DIR/agent.hcl

[Service]
ExecStart=$VAULT_BIN agent -config=$CONF_DIR/agent.hcl
Restart=on-failure
RestartSec=5s
RuntimeDirectory=vault-agent
RuntimeDirectoryMode=0750

[Install]
WantedBy=multi-user.target
UNIT
)
put_file "/etc/systemd/system/$UNIT" 644 "$UNIT_TEXT" || fail "cannot write /etc/systemd/system/$UNIT"
if [ "$WROTE" = 1 ] && have systemctl && systemd_running; then
	systemctl daemon-reload || fail "systemctl daemon-reload failed"
fi

if [ "$CHANGED" = 0 ]; then
	log "nothing changed"
	exit 0
fi
activate "$UNIT" || fail "cannot enable or restart $UNIT"
exit 0
