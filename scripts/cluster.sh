#!/usr/bin/env bash
# Quick start, command 1: set up what is missing and run a four-node mammatus cluster on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --import tsx scripts/local-cluster.ts "$@"
