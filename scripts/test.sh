#!/usr/bin/env bash
# The test command (README.md): installs the real SMTP peers the interop
# tests talk to (swaks, openssl, Postfix's smtpd/smtp-source/smtp-sink,
# stunnel, sslscan, testssl.sh, HAProxy, nginx, PostgreSQL, pebble,
# promtool, aiosmtpd, scramp, pyOpenSSL) and starts the DNS servers of the
# DANE and MTA-STS tests (NSD and Unbound with test zones signed at start,
# scripts/dns-test-servers.sh). nginx, HAProxy, PostgreSQL and pebble are
# started by the tests that use them, each on loopback high ports with a
# configuration and data directory of its own. Then it runs every test of the
# workspace with those peers required: a missing peer fails the run instead
# of printing SKIPPED. It also checks the systemd unit in dist/
# (scripts/check-unit.sh).
#
# Installing needs root (apt-get); run as root or with sudo available. With
# POSTERN_NO_INSTALL=1 it installs nothing and runs with whatever peers the
# machine has, skipping (loudly) the tests whose peer is missing.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${POSTERN_NO_INSTALL:-0}" = 1 ]; then
    echo "test.sh: POSTERN_NO_INSTALL=1: using the peers already installed; missing ones are SKIPPED" >&2
else
    if [ "$(id -u)" = 0 ]; then
        peer_env=$(bash scripts/install-peers.sh)
        eval "$peer_env"
        dns_env=$(bash scripts/dns-test-servers.sh)
        eval "$dns_env"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        peer_env=$(sudo bash scripts/install-peers.sh)
        eval "$peer_env"
        dns_env=$(sudo bash scripts/dns-test-servers.sh)
        eval "$dns_env"
    else
        echo "test.sh: not root and no sudo: cannot install peers; rerun as root, or set POSTERN_NO_INSTALL=1" >&2
        exit 2
    fi
fi

# The systemd unit: systemd-analyze verify and its security rating.
bash scripts/check-unit.sh

cargo test --workspace "$@"
