#!/usr/bin/env bash
# Installs the real SMTP peers that Postern's interop tests talk to: swaks,
# openssl, Postfix (smtpd, smtp-source, smtp-sink; no system service is
# started), stunnel, sslscan, testssl.sh, HAProxy (PROXY-protocol front; no
# service started), promtool (Debian's prometheus package, whose server is
# not started either: it checks the MTA's /metrics output), systemd-analyze
# (checks dist/postern-mta.service), pebble and pebble-challtestsrv (an ACME
# test CA and its mock DNS, run per test on loopback), nginx (the MTA-STS
# policy host, started by the tests on loopback; no service started),
# PostgreSQL (initdb/postgres for the shared-queue tests, which start their
# own servers in temporary directories; no service is started), and
# Python's aiosmtpd, scramp and pyOpenSSL in a venv (pyOpenSSL's wheel bundles an OpenSSL with
# ML-KEM, the post-quantum client of the key-exchange tests; Debian 12's is
# 3.0). Also the build's own needs: a C compiler (ring and aws-lc-rs, the
# crypto providers, are partly C; on x86-64 Debian 12 aws-lc-rs builds with
# the C compiler alone: no cmake, clang or nasm).
# Idempotent; run as root. Prints the environment the tests need.
set -euo pipefail

VENV=${POSTERN_VENV:-/opt/postern-venv}
packages=(build-essential pebble swaks libnet-ssleay-perl libio-socket-ssl-perl openssl postfix stunnel4 sslscan testssl.sh haproxy prometheus systemd nginx-light ca-certificates postgresql)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "install-peers: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Postfix's, HAProxy's and prometheus's postinst would start system
    # services; forbid that (tests start their own on loopback high ports).
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# Nothing may listen on the system SMTP port on behalf of a package.
if command -v postfix >/dev/null && postfix status >/dev/null 2>&1; then
    postfix stop >/dev/null 2>&1 || true
fi
# Only promtool is wanted from the prometheus package, not its server.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus >/dev/null 2>&1 || true
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import aiosmtpd, OpenSSL' 2>/dev/null; then
    echo "install-peers: creating $VENV with aiosmtpd and pyOpenSSL" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'aiosmtpd==1.4.6' 'pyOpenSSL==26.4.0'
fi
# scramp: a SCRAM client we did not write, for SCRAM-SHA-256 AUTH tests.
if ! "$VENV/bin/python" -c 'import scramp' 2>/dev/null; then
    echo "install-peers: installing scramp into $VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check 'scramp==1.5.0'
fi

# dkimpy (with PyNaCl for ed25519-sha256): a DKIM verifier we did not write,
# for the signatures of mailed TLS-RPT reports.
if ! "$VENV/bin/python" -c 'import dkim, nacl' 2>/dev/null; then
    echo "install-peers: installing dkimpy and PyNaCl into $VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check 'dkimpy==1.1.8' 'dnspython==2.9.2' 'pynacl==1.6.2'
fi

echo "export POSTERN_PYTHON=$VENV/bin/python"
echo "export POSTERN_REQUIRE_PEERS=1"
