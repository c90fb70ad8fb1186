#!/usr/bin/env bash
# The relay's layering (crates/relay/Cargo.toml, docs/relay.md): with
# default features off, postern-relay is the sans-IO client alone. It must
# build, with its tests, and its normal dependencies must include no async
# runtime, DNS resolver or bundled root store.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo check -p postern-relay --no-default-features (--tests)"
cargo check -q -p postern-relay --no-default-features
cargo check -q -p postern-relay --no-default-features --tests

echo "== cargo tree -p postern-relay --no-default-features -e normal"
# One crate name per line; `--prefix none` drops the tree drawing.
deps=$(cargo tree -q -p postern-relay --no-default-features -e normal --prefix none -f '{p}' \
    | awk '{print $1}' | sort -u)
forbidden=$(printf '%s\n' "$deps" | grep -E '^(tokio|tokio-rustls|tokio-[a-z-]+|hickory-[a-z-]+|webpki-roots)$' || true)
if [ -n "$forbidden" ]; then
    echo "postern-relay without default features depends on:" >&2
    printf '  %s\n' $forbidden >&2
    echo "the sans-IO core must not pull in the driver's dependencies" >&2
    exit 1
fi
echo "ok: no tokio, tokio-rustls, hickory or webpki-roots in the sans-IO core"

echo "== cargo tree -p postern-queue -e normal (no features)"
# The PostgreSQL store is behind the `postgres` feature: without it the
# queue must not pull in the driver.
qdeps=$(cargo tree -q -p postern-queue -e normal --prefix none -f '{p}' | awk '{print $1}' | sort -u)
if printf '%s\n' "$qdeps" | grep -qE '^(tokio-postgres|postgres-[a-z-]+)$'; then
    echo "postern-queue without the postgres feature depends on the PostgreSQL driver" >&2
    exit 1
fi
echo "ok: postern-queue without the postgres feature has no PostgreSQL driver"
