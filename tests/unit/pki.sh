#!/bin/sh
# pki.sh DIR NAME... - a throwaway CA and one certificate per NAME (CN=NAME)
# for unit tests that need real mutual TLS.  Uses only the openssl command.
set -e
dir=$1; shift
mkdir -p "$dir"; cd "$dir"
openssl req -x509 -newkey ed25519 -nodes -keyout ca.key -out ca.crt -days 2 \
	-subj "/CN=pstore-test-ca" >/dev/null 2>&1
for name in "$@"; do
	f=$(echo "$name" | tr ':' '_')
	openssl req -newkey ed25519 -nodes -keyout "$f.key" -out "$f.csr" -subj "/CN=$name" \
		>/dev/null 2>&1
	printf 'extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n' >"$f.ext"
	openssl x509 -req -in "$f.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-extfile "$f.ext" -out "$f.crt" >/dev/null 2>&1
done
