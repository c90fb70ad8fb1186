#!/usr/bin/env bash
# Checks the systemd unit in dist/ with systemd-analyze: `verify` (syntax,
# directives, referenced executables) and the offline security rating. The
# binary path is pointed at /bin/true for the check, since the unit names the
# installed location (/usr/local/bin), which a build tree does not have.
# The exposure level must stay at or below 2.0 ("OK").
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null; then
    if [ "${POSTERN_REQUIRE_PEERS:-0}" = 1 ]; then
        echo "check-unit: systemd-analyze is required (POSTERN_REQUIRE_PEERS=1)" >&2
        exit 1
    fi
    echo "SKIPPED: check-unit: systemd-analyze is not installed" >&2
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed 's#/usr/local/bin/postern-mta#/bin/true#g' dist/postern-mta.service > "$work/postern-mta.service"
out=$(cd "$work" && systemd-analyze verify ./postern-mta.service 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
    echo "check-unit: systemd-analyze verify reported:" >&2
    echo "$out" >&2
    exit 1
fi
rating=$(cd "$work" && systemd-analyze security --offline=yes ./postern-mta.service 2>&1 | tail -1)
level=$(echo "$rating" | sed -n 's/.*level for [^:]*: \([0-9.]*\).*/\1/p')
# The hardening must not regress: 1.6 when written.
if ! awk -v l="$level" 'BEGIN { exit !(l != "" && l <= 2.0) }'; then
    echo "check-unit: exposure level ${level:-unknown} is above 2.0: $rating" >&2
    exit 1
fi
echo "check-unit: verify clean; exposure $level"
