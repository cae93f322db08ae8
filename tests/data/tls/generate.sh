#!/bin/sh
# Regenerates the TLS test fixtures. Run once; the output is committed so tests need no
# generator at run time. Validity is 100 years so the fixtures never expire under CI.
#   ca.pem         test CA certificate (the `ca-file` of an https:// output)
#   localhost.pem  combined PEM: leaf certificate (localhost, 127.0.0.1), CA, leaf key
#   other-key.pem  a key that matches no certificate (mismatch tests)
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 36500 \
    -subj "/CN=influx-relay test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/leaf.key"
openssl req -new -key "$tmp/leaf.key" -subj "/CN=localhost" -out "$tmp/leaf.csr"
cat > "$tmp/leaf.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EXT
openssl x509 -req -in "$tmp/leaf.csr" -CA ca.pem -CAkey "$tmp/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -sha256 -days 36500 -extfile "$tmp/leaf.ext" -out "$tmp/leaf.pem"
cat "$tmp/leaf.pem" ca.pem "$tmp/leaf.key" > localhost.pem

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other-key.pem
