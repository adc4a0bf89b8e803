#!/bin/sh
# Render alertmanager.yml.template (argument 1) into argument 2 from the environment. POSIX sh and
# sed only: it runs in scripts/infra.sh and in the prom/alertmanager image (busybox).
#   DVC_OPERATOR_EMAILS         operators' addresses, comma-separated (required)
#   DVC_ALERTMANAGER_SMARTHOST  host:port of the SMTP relay (default DVC_SMTP_HOST:DVC_SMTP_PORT,
#                               127.0.0.1:25)
#   DVC_SMTP_FROM               sender (default giamsat-dvc@localhost)
#   DVC_SMTP_TLS                starttls (default, required) | tls (implicit TLS: port 465) | off
#   DVC_SMTP_USERNAME, DVC_SMTP_PASSWORD   optional SMTP login (never with DVC_SMTP_TLS=off)
#   DVC_OPERATOR_WEBHOOK_URL    optional: also POST every alert there (Alertmanager webhook format)
#   DVC_ALERTMANAGER_GROUP_WAIT wait before the first mail of a new group (default 30s)
set -eu
[ $# -eq 2 ] || { echo "usage: render.sh TEMPLATE OUTPUT" >&2; exit 2; }
template=$1
out=$2
die() { printf 'LỖI / ERROR: alertmanager: %s\n' "$*" >&2; exit 1; }

# Values go into single-quoted YAML strings through sed: refuse what could break out of either.
check() { # name value
  case $2 in
    *"'"* | *\\* | *'|'* | *'&'* | *'
'*) die "$1 chứa ký tự không cho phép (' \\ | & xuống dòng) / contains a forbidden character" ;;
  esac
}

emails=${DVC_OPERATOR_EMAILS:-}
[ -n "$emails" ] || die "đặt DVC_OPERATOR_EMAILS (địa chỉ thư của người vận hành) / set DVC_OPERATOR_EMAILS"
printf '%s' "$emails" | grep -Eq '^ *[^ @,]+@[^ @,]+( *, *[^ @,]+@[^ @,]+)* *$' ||
  die "DVC_OPERATOR_EMAILS không hợp lệ / invalid (a@x, b@y): $emails"
smarthost=${DVC_ALERTMANAGER_SMARTHOST:-${DVC_SMTP_HOST:-127.0.0.1}:${DVC_SMTP_PORT:-25}}
from=${DVC_SMTP_FROM:-giamsat-dvc@localhost}
tls=${DVC_SMTP_TLS:-starttls}
user=${DVC_SMTP_USERNAME:-}
password=${DVC_SMTP_PASSWORD:-}
webhook=${DVC_OPERATOR_WEBHOOK_URL:-}
group_wait=${DVC_ALERTMANAGER_GROUP_WAIT:-30s}
for pair in "DVC_OPERATOR_EMAILS=$emails" "DVC_ALERTMANAGER_SMARTHOST=$smarthost" "DVC_SMTP_FROM=$from" \
  "DVC_SMTP_USERNAME=$user" "DVC_SMTP_PASSWORD=$password" "DVC_OPERATOR_WEBHOOK_URL=$webhook"; do
  check "${pair%%=*}" "${pair#*=}"
done
printf '%s' "$group_wait" | grep -Eq '^[0-9]+(ms|s|m|h)$' || die "DVC_ALERTMANAGER_GROUP_WAIT không hợp lệ / invalid: $group_wait"
case $smarthost in *:[0-9]*) ;; *) die "DVC_ALERTMANAGER_SMARTHOST cần host:port / needs host:port: $smarthost" ;; esac
case $tls in
  starttls) require_tls=true ;;
  tls) # Alertmanager speaks implicit TLS on port 465 only
    case $smarthost in *:465) require_tls=true ;; *) die "DVC_SMTP_TLS=tls cần cổng 465 / needs port 465: $smarthost" ;; esac ;;
  off) require_tls=false ;;
  *) die "DVC_SMTP_TLS phải là starttls, tls hoặc off / must be starttls, tls or off: $tls" ;;
esac
[ -z "$user" ] || [ -n "$password" ] || die "DVC_SMTP_USERNAME cần DVC_SMTP_PASSWORD / needs DVC_SMTP_PASSWORD"
[ -z "$password" ] || [ "$tls" != off ] || die "không gửi mật khẩu SMTP khi DVC_SMTP_TLS=off / refusing SMTP AUTH without TLS"
case $webhook in '' | http://* | https://*) ;; *) die "DVC_OPERATOR_WEBHOOK_URL phải là http(s):// / must be http(s)://" ;; esac

if [ -n "$webhook" ]; then keep_webhook='s/ *#@webhook$//'; else keep_webhook='/#@webhook$/d'; fi
if [ -n "$user" ]; then keep_auth='s/ *#@auth$//'; else keep_auth='/#@auth$/d'; fi
umask 077 # the file may hold the SMTP password
sed -e "$keep_webhook" -e "$keep_auth" \
  -e "s|@SMARTHOST@|$smarthost|g" -e "s|@FROM@|$from|g" -e "s|@REQUIRE_TLS@|$require_tls|g" \
  -e "s|@SMTP_USERNAME@|$user|g" -e "s|@SMTP_PASSWORD@|$password|g" \
  -e "s|@OPERATOR_EMAILS@|$emails|g" -e "s|@GROUP_WAIT@|$group_wait|g" -e "s|@WEBHOOK_URL@|$webhook|g" \
  "$template" >"$out.tmp"
mv -f "$out.tmp" "$out"
