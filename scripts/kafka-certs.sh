#!/usr/bin/env bash
# TLS files of the Kafka broker's external listener, made with openssl (a private CA for this
# installation): ca.crt (give it to the clients: DVC_KAFKA_CA_FILE), ca.key, server.key, server.crt
# and server.pem (key + certificate, Kafka's PEM keystore).
#
#   scripts/kafka-certs.sh DIR [NAME...]
#
# NAME: the host names and IP addresses clients use to reach the broker (default: localhost 127.0.0.1;
# compose: kafka plus the host's public name). Existing files are kept when the certificate already
# names every NAME and is valid for 30 more days; otherwise the server certificate is re-issued
# (the CA is kept, so clients need not change).
set -euo pipefail
umask 077

DIR=${1:?usage: scripts/kafka-certs.sh DIR [NAME...]}
shift
NAMES=("$@")
((${#NAMES[@]})) || NAMES=(localhost 127.0.0.1)
DAYS_CA=3650
DAYS_SERVER=825

command -v openssl >/dev/null || { echo "LỖI / ERROR: openssl không có / not found" >&2; exit 1; }
mkdir -p -- "$DIR"

san=
for name in "${NAMES[@]}"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+="IP:$name,"; else san+="DNS:$name,"; fi
done
san=${san%,}

current() {
  [[ -f $DIR/server.pem && -f $DIR/server.crt && -f $DIR/ca.crt ]] || return 1
  openssl x509 -in "$DIR/server.crt" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 || return 1
  local have
  have=$(openssl x509 -in "$DIR/server.crt" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')
  local want
  want=$(tr ',' '\n' <<<"$san" | sed 's/^IP:/IPAddress:/' | sort | paste -sd,)
  [[ $(tr ',' '\n' <<<"$have" | sort | paste -sd,) == "$want" ]]
}

if current; then exit 0; fi

if [[ ! -f $DIR/ca.key || ! -f $DIR/ca.crt ]]; then
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days "$DAYS_CA" -subj "/CN=dvc-monitor Kafka CA" \
    -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
fi
openssl req -newkey rsa:3072 -nodes -sha256 -subj "/CN=${NAMES[0]}" \
  -keyout "$DIR/server.key.new" -out "$DIR/server.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n' "$san" \
  >"$DIR/server.ext"
openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
  -days "$DAYS_SERVER" -sha256 -extfile "$DIR/server.ext" -out "$DIR/server.crt.new" 2>/dev/null
# Kafka's PEM keystore wants a PKCS#8 key followed by the certificate chain
openssl pkcs8 -topk8 -nocrypt -in "$DIR/server.key.new" -out "$DIR/server.key"
cat "$DIR/server.key" "$DIR/server.crt.new" "$DIR/ca.crt" >"$DIR/server.pem"
mv -f -- "$DIR/server.crt.new" "$DIR/server.crt"
rm -f -- "$DIR/server.key.new" "$DIR/server.csr" "$DIR/server.ext" "$DIR/ca.srl"
chmod 644 -- "$DIR/ca.crt" "$DIR/server.crt"
echo "Chứng chỉ TLS của Kafka / Kafka TLS certificate: $DIR/server.crt ($san)"
