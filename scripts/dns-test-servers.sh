#!/usr/bin/env bash
# Starts the DNS half of the DANE tests (issue 13) with real parts:
# - NSD, an authoritative server, serving test zones under dane.test. that
#   are signed here, at start, with ldns-signzone;
# - Unbound, a validating resolver whose only trust anchor is dane.test.'s
#   key, that reaches NSD through stub zones.
# It also makes the certificates the receiving SMTP peers present, and
# writes TLSA records for them, so the tests can start a peer whose
# certificate matches its TLSA records or one whose certificate does not.
#
# Usage: dns-test-servers.sh [start|stop]   (start is the default)
# Idempotent: keys and certificates are kept in the state directory, the
# zones are re-signed and both servers restarted on every start. Installs
# nsd, ldnsutils, unbound, dnsutils and openssl with apt-get when missing
# (run as root for that). Prints the environment the tests need as
# `export VAR=...` lines, like install-peers.sh.
#
# The zones (A records point at distinct loopback addresses, so tests can
# run one peer per case on the same port, POSTERN_DANE_PORT):
#   signed.dane.test.       signed
#     @              MX mx            _PORT._tcp.mx      TLSA 3 1 1 <good key>
#     ta             MX mx-ta         _PORT._tcp.mx-ta   TLSA 2 0 1 <CA cert>
#     mismatch       MX mx-bad        _PORT._tcp.mx-bad  TLSA 3 1 1 <bad key>
#     unusable       MX mx-pkix       _PORT._tcp.mx-pkix TLSA 1 1 1 <good key> (PKIX-EE only)
#     insecure-host  MX mx.unsigned.dane.test. (signed MX, unsigned address)
#   bogus.dane.test.        signed, every RRSIG but the DNSKEY's corrupted
#   unsigned.dane.test.     no DS in the parent: insecure
#   servfail.dane.test.     signed; only the TLSA RRset's RRSIG is corrupted,
#                           so MX and A validate and the TLSA query answers
#                           SERVFAIL (what a client behind a validating
#                           resolver sees when a nameserver fails TLSA
#                           queries, maddy #287)
#   sts.dane.test.          unsigned (no DS): the MTA-STS tests (issue 14).
#     Each case is a subdomain CASE with `MX 10 mx.CASE`, every MX host at
#     127.0.3.10 (one SMTP peer whose certificate names them all), the
#     policy host mta-sts.CASE at 127.0.3.1 (the tests' nginx) and a TXT
#     record `_mta-sts.CASE` (see the zone below; `badtxt`'s is malformed,
#     `twotxt` has two).
# The trust anchor of dane.test. is written as a DS record (Unbound's
# trust-anchor-file) and as a DNSKEY record (POSTERN_DNS_TRUST_ANCHOR_KEY,
# for in-process validation against NSD directly, with Unbound out of the
# path).
set -euo pipefail

STATE=${POSTERN_DNS_DIR:-/tmp/postern-dns}
AUTH_ADDR=${POSTERN_DNS_AUTH_ADDR:-127.0.0.53}
AUTH_PORT=${POSTERN_DNS_AUTH_PORT:-5300}
RESOLVER_ADDR=${POSTERN_DNS_RESOLVER_ADDR:-127.0.0.54}
RESOLVER_PORT=${POSTERN_DNS_RESOLVER_PORT:-5301}
SMTP_PORT=${POSTERN_DANE_PORT:-2525}
APEX=dane.test
CHILDREN=(signed bogus unsigned servfail sts)

log() { echo "dns-test-servers: $*" >&2; }

# Runs a daemon without the caller's other descriptors: started as
# `flock /work/test.lock scripts/dns-test-servers.sh`, NSD and Unbound
# would otherwise inherit the lock and hold it for as long as they run.
detached() {
    (
        for fd in $(ls /proc/$BASHPID/fd); do
            case $fd in 0 | 1 | 2 | 255) ;; *) eval "exec $fd>&-" ;; esac
        done
        "$@"
    )
}

stop_pid() {
    local pidfile=$1
    if [ -s "$pidfile" ]; then
        local pid
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pidfile"
    fi
}

stop() {
    stop_pid "$STATE/unbound.pid"
    stop_pid "$STATE/nsd.pid"
}

if [ "${1:-start}" = stop ]; then
    stop
    exit 0
fi

install_missing() {
    local packages=(nsd ldnsutils unbound dnsutils openssl) missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' postinst scripts would start system services; forbid it.
    local created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
install_missing

mkdir -p "$STATE"/{certs,keys,zones}
stop

# --- Certificates -----------------------------------------------------------
certs=$STATE/certs
names=()
for host in mx.signed mx-ta.signed mx-bad.signed mx-pkix.signed mx.bogus mx.unsigned mx.servfail; do
    names+=("DNS:$host.$APEX")
done
san=$(IFS=,; echo "${names[*]}")

ec_key() { [ -s "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -s "$certs/ca.pem" ] || [ ! -s "$certs/good.pem" ] || [ ! -s "$certs/bad.pem" ] ||
   ! openssl x509 -in "$certs/good.pem" -noout -checkend 86400 >/dev/null; then
    log "making certificates in $certs"
    ec_key "$certs/ca.key"
    ec_key "$certs/good.key"
    ec_key "$certs/bad.key"
    openssl req -x509 -new -key "$certs/ca.key" -subj "/CN=Postern DANE test CA" -days 30 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$certs/ca.pem" 2>/dev/null
    openssl req -new -key "$certs/good.key" -subj "/CN=mx.signed.$APEX" 2>/dev/null |
        openssl x509 -req -CA "$certs/ca.pem" -CAkey "$certs/ca.key" -set_serial 2 -days 30 \
            -extfile <(printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san") \
            -out "$certs/good.pem" 2>/dev/null
    # The mismatching certificate has the same names and another key.
    openssl req -x509 -new -key "$certs/bad.key" -subj "/CN=mx.signed.$APEX" -days 30 \
        -addext "subjectAltName=$san" -addext "basicConstraints=CA:FALSE" \
        -out "$certs/bad.pem" 2>/dev/null
fi
# DANE-TA(2) requires the server to present the anchor in its chain
# (RFC 7672 §3.2.2), so the peer's chain file carries the CA.
cat "$certs/good.pem" "$certs/ca.pem" > "$certs/good-chain.pem"
# Test-only keys: readable by the (possibly unprivileged) tests.
chmod a+r "$certs"/*

sha256() { openssl dgst -sha256 -r | cut -d' ' -f1 | tr a-f A-F; }
spki_sha256() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256; }
cert_sha256() { openssl x509 -in "$1" -outform DER | sha256; }
GOOD_311=$(spki_sha256 "$certs/good.pem")
BAD_311=$(spki_sha256 "$certs/bad.pem")
CA_201=$(cert_sha256 "$certs/ca.pem")

# --- Zones --------------------------------------------------------------------
zones=$STATE/zones
keys=$STATE/keys
serial=$(date +%s)

soa() {
    printf '$ORIGIN %s.\n$TTL 300\n@ SOA ns.%s. hostmaster.%s. %s 3600 600 86400 300\n@ NS ns.%s.\n' \
        "$1" "$APEX" "$APEX" "$serial" "$APEX"
}

# One ECDSA P-256 key per zone, used as its only (KSK+ZSK) key.
zone_key() {
    local zone=$1
    if [ ! -s "$keys/$zone.name" ]; then
        (cd "$keys" && ldns-keygen -a ECDSAP256SHA256 -k "$zone" > "$zone.name")
    fi
    echo "$keys/$(cat "$keys/$zone.name")"
}

sign() {
    local zone=$1 key
    key=$(zone_key "$zone")
    # Inception an hour back, so a slightly slow clock still validates.
    ldns-signzone -i "$(date -u -d '-1 hour' +%Y%m%d%H%M%S)" -e "$(date -u -d '+14 days' +%Y%m%d%H%M%S)" \
        -f "$zones/$zone.signed" "$zones/$zone.zone" "$key"
}

# Replaces the first character of the signature of every RRSIG whose type
# covered is listed, so the signature no longer verifies.
corrupt_rrsigs() {
    local file=$1 covered=$2
    awk -v covered=" $covered " '
        $4 == "RRSIG" && index(covered, " " $5 " ") {
            sig = $NF
            first = substr(sig, 1, 1) == "A" ? "B" : "A"
            $NF = first substr(sig, 2)
        }
        { print }' "$file" > "$file.tmp"
    mv "$file.tmp" "$file"
}

{
    soa "signed.$APEX"
    cat <<EOF
@ MX 10 mx
mx A 127.0.1.1
_$SMTP_PORT._tcp.mx TLSA 3 1 1 $GOOD_311
ta MX 10 mx-ta
mx-ta A 127.0.1.2
_$SMTP_PORT._tcp.mx-ta TLSA 2 0 1 $CA_201
mismatch MX 10 mx-bad
mx-bad A 127.0.1.3
_$SMTP_PORT._tcp.mx-bad TLSA 3 1 1 $BAD_311
unusable MX 10 mx-pkix
mx-pkix A 127.0.1.7
_$SMTP_PORT._tcp.mx-pkix TLSA 1 1 1 $GOOD_311
insecure-host MX 10 mx.unsigned.$APEX.
EOF
} > "$zones/signed.$APEX.zone"

for child in bogus unsigned servfail; do
    case $child in bogus) a=127.0.1.4 ;; unsigned) a=127.0.1.5 ;; servfail) a=127.0.1.6 ;; esac
    {
        soa "$child.$APEX"
        printf '@ MX 10 mx\nmx A %s\n_%s._tcp.mx TLSA 3 1 1 %s\n' "$a" "$SMTP_PORT" "$GOOD_311"
    } > "$zones/$child.$APEX.zone"
done

# The MTA-STS cases: the TXT id of each, or a malformed record.
{
    soa "sts.$APEX"
    for case in good badtxt badfile badcert testing none same newid fetchfail nomatch restart redirect html big twotxt testbad; do
        printf '%s MX 10 mx.%s\nmx.%s A 127.0.3.10\nmta-sts.%s A 127.0.3.1\n' "$case" "$case" "$case" "$case"
        case $case in
            badtxt) printf '_mta-sts.%s TXT "v=STSv1; id=not valid!"\n' "$case" ;;
            twotxt) printf '_mta-sts.%s TXT "v=STSv1; id=one1"\n_mta-sts.%s TXT "v=STSv1; id=two2"\n' "$case" "$case" ;;
            # A record split into two strings is read as one (RFC 8461 §3.1).
            good) printf '_mta-sts.%s TXT "v=STSv1; " "id=%s1"\n' "$case" "$case" ;;
            *) printf '_mta-sts.%s TXT "v=STSv1; id=%s1"\n' "$case" "$case" ;;
        esac
        # TLS-RPT (issue 14): where good's and testing's reports go.
        case $case in
            good) printf '_smtp._tls.%s TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test,https://mta-sts.%s.sts.%s/tlsrpt"\n' "$case" "$case" "$APEX" ;;
            testing) printf '_smtp._tls.%s TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"\n' "$case" ;;
        esac
    done
} > "$zones/sts.$APEX.zone"
cp "$zones/sts.$APEX.zone" "$zones/sts.$APEX.signed"

sign "signed.$APEX"
sign "bogus.$APEX"
corrupt_rrsigs "$zones/bogus.$APEX.signed" "SOA NS MX A TLSA NSEC"
sign "servfail.$APEX"
corrupt_rrsigs "$zones/servfail.$APEX.signed" "TLSA"
cp "$zones/unsigned.$APEX.zone" "$zones/unsigned.$APEX.signed"

{
    soa "$APEX"
    printf 'ns A %s\n' "$AUTH_ADDR"
    for child in "${CHILDREN[@]}"; do
        printf '%s NS ns.%s.\n' "$child" "$APEX"
    done
    # The delegations' DS records, except for the unsigned zone.
    for child in signed bogus servfail; do
        key=$(zone_key "$child.$APEX")
        sed -E 's/^[^[:space:]]+[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+DS/'"$child"' DS/' "$key.ds"
    done
} > "$zones/$APEX.zone"
sign "$APEX"
cp "$(zone_key "$APEX").ds" "$STATE/trust-anchor.ds"
# The same anchor as a DNSKEY record, for validators that take keys
# (postern-relay's `validate` mode, through hickory).
cp "$(zone_key "$APEX").key" "$STATE/trust-anchor.key"

# --- NSD ------------------------------------------------------------------------
{
    cat <<EOF
server:
    ip-address: $AUTH_ADDR@$AUTH_PORT
    username: ""
    chroot: ""
    zonesdir: "$zones"
    database: ""
    zonelistfile: "$STATE/nsd.zonelist"
    xfrdfile: "$STATE/nsd.xfrd"
    xfrdir: "$STATE"
    pidfile: "$STATE/nsd.pid"
    logfile: "$STATE/nsd.log"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
EOF
    for zone in "$APEX" "${CHILDREN[@]/%/.$APEX}"; do
        printf 'zone:\n    name: "%s"\n    zonefile: "%s.signed"\n' "$zone" "$zone"
    done
} > "$STATE/nsd.conf"
rm -f "$STATE/nsd.zonelist"
nsd-checkconf "$STATE/nsd.conf"
detached nsd -c "$STATE/nsd.conf"

# --- Unbound --------------------------------------------------------------------
{
    cat <<EOF
server:
    interface: $RESOLVER_ADDR@$RESOLVER_PORT
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    directory: "$STATE"
    pidfile: "$STATE/unbound.pid"
    logfile: "$STATE/unbound.log"
    use-syslog: no
    verbosity: 1
    val-log-level: 2
    do-ip6: no
    # The authoritative server is on a loopback address.
    do-not-query-localhost: no
    # Unbound answers test. itself (RFC 6761); let dane.test. through.
    local-zone: "test." nodefault
    module-config: "validator iterator"
    trust-anchor-file: "$STATE/trust-anchor.ds"
    # Fresh answers for every run of the tests.
    cache-max-ttl: 30
    cache-max-negative-ttl: 5
remote-control:
    control-enable: no
EOF
    for zone in "$APEX" "${CHILDREN[@]/%/.$APEX}"; do
        printf 'stub-zone:\n    name: "%s"\n    stub-addr: %s@%s\n' "$zone" "$AUTH_ADDR" "$AUTH_PORT"
    done
} > "$STATE/unbound.conf"
unbound-checkconf "$STATE/unbound.conf" >/dev/null
detached unbound -c "$STATE/unbound.conf"

# --- Ready? ---------------------------------------------------------------------
ready=0
for _ in $(seq 50); do
    if dig +dnssec +time=1 +tries=1 @"$RESOLVER_ADDR" -p "$RESOLVER_PORT" MX "signed.$APEX" 2>/dev/null |
        grep -q 'flags:.* ad'; then
        ready=1
        break
    fi
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    log "the resolver does not validate signed.$APEX; see $STATE/unbound.log and $STATE/nsd.log"
    exit 1
fi

cat <<EOF
export POSTERN_DNS_RESOLVER=$RESOLVER_ADDR:$RESOLVER_PORT
export POSTERN_DNS_AUTH=$AUTH_ADDR:$AUTH_PORT
export POSTERN_DNS_TRUST_ANCHOR=$STATE/trust-anchor.ds
export POSTERN_DNS_TRUST_ANCHOR_KEY=$STATE/trust-anchor.key
export POSTERN_DANE_ZONE=$APEX
export POSTERN_DANE_PORT=$SMTP_PORT
export POSTERN_DANE_CA=$certs/ca.pem
export POSTERN_DANE_CERT=$certs/good-chain.pem
export POSTERN_DANE_KEY=$certs/good.key
export POSTERN_DANE_BAD_CERT=$certs/bad.pem
export POSTERN_DANE_BAD_KEY=$certs/bad.key
export POSTERN_DANE_TLSA_GOOD="3 1 1 $GOOD_311"
export POSTERN_DANE_TLSA_BAD="3 1 1 $BAD_311"
export POSTERN_DANE_TLSA_CA="2 0 1 $CA_201"
export POSTERN_STS_ZONE=sts.$APEX
EOF
