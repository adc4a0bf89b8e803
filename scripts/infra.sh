#!/usr/bin/env bash
# Native dev/CI infrastructure for dvc-monitor, without containers: PostgreSQL, Kafka 4.3.1 (KRaft,
# single node), Alertmanager and Prometheus as plain background processes on 127.0.0.1, all state
# under $DVC_DATA_DIR (default <repo>/.data).
#
#   scripts/infra.sh up|down|status|logs [postgres|kafka|alertmanager|prometheus]
#
# Environment (defaults): DVC_DATA_DIR (<repo>/.data), DVC_PG_PORT (55432), DVC_KAFKA_PORT (59092,
# SASL), DVC_KAFKA_EXTERNAL_PORT (59095, SASL over TLS), DVC_KAFKA_CONTROLLER_PORT (59093),
# DVC_PROMETHEUS_PORT (59090), DVC_ALERTMANAGER_PORT (59094),
# DVC_KAFKA_LIB_DIR ($HOME/.cache/dvc-monitor/kafka-4.3.1-lib), DVC_INGEST_HTTP_PORT (8001),
# DVC_METRICS_HTTP_PORT (8002), DVC_ALERTS_HTTP_PORT (8003), DVC_LOGS_FOLLOW (1 on a terminal).
# Alertmanager mails the platform alerts to DVC_OPERATOR_EMAILS (default operators@localhost) through
# DVC_ALERTMANAGER_SMARTHOST (default DVC_SMTP_HOST:DVC_SMTP_PORT, 127.0.0.1:25) with DVC_SMTP_FROM,
# DVC_SMTP_TLS (starttls|tls|off), DVC_SMTP_USERNAME/PASSWORD, and posts them to
# DVC_OPERATOR_WEBHOOK_URL if set (deploy/alertmanager/render.sh; DVC_ALERTMANAGER_GROUP_WAIT, 30s).
#
# `up` writes $DVC_DATA_DIR/secrets.env (mode 600, random values generated once) and
# $DVC_DATA_DIR/infra.env (addresses); both are KEY=value lines: `set -a; . infra.env; . secrets.env`.
# Kafka: SASL/SCRAM-SHA-512 with ACLs; after each start `dvc kafka setup` (the project's Python)
# creates the principals, topics and ACLs; the TLS files of the external listener are in kafka/tls.
# Exit codes: 0 ok, 1 failure, 2 usage, 3 `status` with a component not running.
set -euo pipefail
umask 022

HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DATA_DIR=$(realpath -m -- "${DVC_DATA_DIR:-$REPO_ROOT/.data}")
PG_PORT=${DVC_PG_PORT:-55432}
KAFKA_PORT=${DVC_KAFKA_PORT:-59092}
KAFKA_CONTROLLER_PORT=${DVC_KAFKA_CONTROLLER_PORT:-59093}
KAFKA_EXTERNAL_PORT=${DVC_KAFKA_EXTERNAL_PORT:-59095}
PROM_PORT=${DVC_PROMETHEUS_PORT:-59090}
AM_PORT=${DVC_ALERTMANAGER_PORT:-59094}
KAFKA_LIB_DIR=$(realpath -m -- "${DVC_KAFKA_LIB_DIR:-$HOME/.cache/dvc-monitor/kafka-4.3.1-lib}")
INGEST_HTTP_PORT=${DVC_INGEST_HTTP_PORT:-8001}
METRICS_HTTP_PORT=${DVC_METRICS_HTTP_PORT:-8002}
ALERTS_HTTP_PORT=${DVC_ALERTS_HTTP_PORT:-8003}

KAFKA_VERSION=4.3.1
PG_SUPERUSER=dvc_admin
PG_DATABASE=dvc
PG_OS_USER=postgres
PG_DEADLINE=60
KAFKA_DEADLINE=120
PROM_DEADLINE=60
AM_DEADLINE=60
STOP_GRACE=30

RUN_DIR=$DATA_DIR/run
LOG_DIR=$DATA_DIR/logs
SECRETS_FILE=$DATA_DIR/secrets.env
INFRA_ENV=$DATA_DIR/infra.env
PG_DATA=$DATA_DIR/postgres
PG_SOCKET_DIR=$RUN_DIR/postgres
KAFKA_DIR=$DATA_DIR/kafka
KAFKA_CONFIG=$KAFKA_DIR/server.properties
KAFKA_LOG_DIRS=$KAFKA_DIR/kraft-combined-logs
KAFKA_TLS_DIR=$KAFKA_DIR/tls
PROM_DIR=$DATA_DIR/prometheus
PROM_CONFIG=$PROM_DIR/prometheus.yml
PROM_TSDB=$PROM_DIR/data
AM_DIR=$DATA_DIR/alertmanager
AM_CONFIG=$AM_DIR/alertmanager.yml
AM_DATA=$AM_DIR/data

COMPONENTS=(postgres kafka alertmanager prometheus)
# the Kafka principals are those of cli/kafka.py (PRINCIPALS) plus the super user admin
KAFKA_PRINCIPAL_KEYS=(DVC_KAFKA_INGEST_PASSWORD DVC_KAFKA_METRICS_PASSWORD DVC_KAFKA_ALERTS_PASSWORD
  DVC_KAFKA_OPERATOR_PASSWORD DVC_KAFKA_SIMULATOR_PASSWORD DVC_KAFKA_ONE_STOP_PASSWORD DVC_KAFKA_DOCUMENTS_PASSWORD
  DVC_KAFKA_REPORTING_PASSWORD DVC_KAFKA_INSPECTION_PASSWORD)
SECRET_KEYS=(DVC_ADMIN_DB_PASSWORD DVC_INGEST_DB_PASSWORD DVC_METRICS_DB_PASSWORD
  DVC_ALERTS_DB_PASSWORD DVC_READER_DB_PASSWORD DVC_ALERTS_SIGNING_KEY DVC_WEBHOOK_SECRET
  DVC_PAGES_SIGNING_KEY DVC_KAFKA_ADMIN_PASSWORD "${KAFKA_PRINCIPAL_KEYS[@]}")
ADMIN_PW_NEW=0
TMP_FILES=()
trap 'rm -rf -- "${TMP_FILES[@]}"' EXIT

# ---------------------------------------------------------------------------------------------
# messages and small helpers

say() { printf '%s\n' "$*"; }
warn() { printf 'CẢNH BÁO / WARNING: %s\n' "$*" >&2; }
die() { printf 'LỖI / ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  cat >&2 <<EOF
Cách dùng / usage: scripts/infra.sh up|down|status|logs [postgres|kafka|alertmanager|prometheus]
EOF
  exit 2
}

label() {
  case $1 in postgres) echo PostgreSQL ;; kafka) echo Kafka ;; prometheus) echo Prometheus ;; alertmanager) echo Alertmanager ;; esac
}

address() {
  case $1 in
    postgres) echo "127.0.0.1:$PG_PORT" ;;
    kafka) echo "127.0.0.1:$KAFKA_PORT" ;;
    prometheus) echo "http://127.0.0.1:$PROM_PORT" ;;
    alertmanager) echo "http://127.0.0.1:$AM_PORT" ;;
  esac
}

log_file() { echo "$LOG_DIR/$1.log"; }
pid_file() { echo "$RUN_DIR/$1.pid"; }

# Print the component's failure, the last 30 lines of its log, and exit non-zero.
fail_component() {
  local comp=$1 reason=$2 log
  log=$(log_file "$comp")
  # optional third argument: the log to show instead (no-log: none)
  case ${3:-} in '') ;; no-log) log=/dev/null ;; *) log=$3 ;; esac
  {
    printf 'LỖI / ERROR: Không khởi động được %s / %s failed to start: %s\n' \
      "$(label "$comp")" "$(label "$comp")" "$reason"
    if [[ -f $log && -s $log ]]; then
      printf -- '--- 30 dòng cuối của / last 30 lines of %s ---\n' "$log"
      tail -n 30 -- "$log"
    fi
  } >&2
  exit 1
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
before_deadline() { awk -v d="$1" -v n="$(now)" 'BEGIN { exit !(n < d) }'; }
deadline_in() { awk -v s="$1" -v n="$(now)" 'BEGIN { printf "%.3f", n + s }'; }

check_port_number() {
  [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0 && $2 < 65536)) || die "$1 không hợp lệ / invalid port: '$2'"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True when GET http://127.0.0.1:$1$2 answers 200 (bash only, no curl needed).
http_ok() {
  local line
  line=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3
    IFS= read -r line <&3 && printf "%s" "$line"' _ "$1" "$2" 2>/dev/null) || return 1
  [[ $line =~ ^HTTP/[0-9.]+\ 200 ]]
}

rand_hex() { # bytes
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex "$1"
  else
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
    echo
  fi
}

# ---------------------------------------------------------------------------------------------
# processes: pidfiles checked against /proc so that a recycled pid is never mistaken for ours

pid_alive() {
  local state
  state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# Pid of the postmaster running on our data directory (its own postmaster.pid is authoritative).
pg_postmaster_pid() {
  local pid
  [[ -r $PG_DATA/postmaster.pid ]] || return 1
  pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
  [[ $(cmdline_of "$pid") == *postgres*"-D $PG_DATA"* ]] || return 1
  echo "$pid"
}

# Pid of our running process for a component, from its pidfile; fails when not running.
running_pid() {
  local comp=$1 pid cmd
  if [[ $comp == postgres ]]; then
    pg_postmaster_pid
    return
  fi
  pid=$(cat "$(pid_file "$comp")" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
  cmd=$(cmdline_of "$pid")
  case $comp in
    kafka) [[ $cmd == *kafka.Kafka*"$KAFKA_CONFIG"* ]] ;;
    prometheus) [[ $cmd == *prometheus*"--storage.tsdb.path=$PROM_TSDB"* ]] ;;
    alertmanager) [[ $cmd == *alertmanager*"--storage.path=$AM_DATA"* ]] ;;
  esac || return 1
  echo "$pid"
}

# SIGTERM, wait up to STOP_GRACE seconds, then SIGKILL.
terminate() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < STOP_GRACE * 10; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  warn "pid $pid chưa dừng sau ${STOP_GRACE}s, gửi SIGKILL / still alive after ${STOP_GRACE}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
}

# Serialise up/down on one data dir, so that two concurrent `up`s never start two brokers.
# Every process we launch gets `9>&-` so that it does not keep holding the lock.
acquire_lock() {
  mkdir -p -- "$RUN_DIR"
  exec 9>"$RUN_DIR/infra.lock"
  if ! flock -n 9; then
    say "Đang chờ một lệnh infra.sh khác trên $DATA_DIR / waiting for another infra.sh on this data dir..."
    flock -w 900 9 || die "Không lấy được khoá / could not take the lock $RUN_DIR/infra.lock"
  fi
}

# Run as the PostgreSQL OS user (initdb and postgres refuse to run as root).
as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

# ---------------------------------------------------------------------------------------------
# installing what is missing (Debian packages only; java and maven are expected to be present)

apt_install() {
  local log=$LOG_DIR/apt.log
  ((EUID == 0)) || die "Thiếu gói, cần quyền root để cài / missing packages, run as root to install: $*"
  command -v apt-get >/dev/null || die "Thiếu gói và không có apt-get / missing packages and no apt-get: $*"
  say "Đang cài đặt / installing: $* (apt-get, log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1 9>&-; then
    apt-get update -qq >>"$log" 2>&1 9>&- || true
    if ! apt-get install -y -qq --no-install-recommends "$@" >>"$log" 2>&1 9>&-; then
      tail -n 30 -- "$log" >&2
      die "Không cài được / could not install: $*"
    fi
  fi
}

PG_BIN=
find_pg_bin() {
  local v d
  PG_BIN=
  if [[ -r $PG_DATA/PG_VERSION ]]; then
    v=$(<"$PG_DATA/PG_VERSION")
    [[ -x /usr/lib/postgresql/$v/bin/pg_ctl ]] && PG_BIN=/usr/lib/postgresql/$v/bin && return 0
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x $d/initdb && -x $d/pg_ctl && -x $d/psql ]] && PG_BIN=$d && return 0
  done
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
    PG_BIN=$(dirname "$(command -v pg_ctl)")
    return 0
  fi
  return 1
}

PROM_BIN=
find_prom_bin() {
  if [[ -x /usr/bin/prometheus ]]; then PROM_BIN=/usr/bin/prometheus; else PROM_BIN=$(command -v prometheus) || return 1; fi
}

AM_BIN=
find_am_bin() {
  if [[ -x /usr/bin/prometheus-alertmanager ]]; then AM_BIN=/usr/bin/prometheus-alertmanager; else AM_BIN=$(command -v alertmanager) || return 1; fi
}

JAVA=
find_java() {
  local ver major
  JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
  command -v "$JAVA" >/dev/null 2>&1 ||
    die "Không tìm thấy java (cần JDK 17+) / java not found (JDK 17+ needed): apt-get install -y --no-install-recommends openjdk-17-jre-headless"
  ver=$("$JAVA" -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')
  major=${ver%%.*}
  [[ $major =~ ^[0-9]+$ ]] && ((major >= 17)) ||
    die "Kafka $KAFKA_VERSION cần Java 17+, có / needs Java 17+, found: '${ver:-?}' ($JAVA)"
}

ensure_packages() {
  local comp missing=()
  for comp in "$@"; do
    case $comp in
      postgres) find_pg_bin || missing+=(postgresql) ;;
      prometheus) find_prom_bin || missing+=(prometheus) ;;
      alertmanager) find_am_bin || missing+=(prometheus-alertmanager) ;;
      kafka) find_java ;;
    esac
  done
  ((${#missing[@]} == 0)) && return 0
  apt_install "${missing[@]}"
  for comp in "$@"; do
    case $comp in
      postgres) find_pg_bin || die "Đã cài nhưng không thấy / installed but not found: initdb, pg_ctl" ;;
      prometheus) find_prom_bin || die "Đã cài nhưng không thấy / installed but not found: prometheus" ;;
      alertmanager) find_am_bin || die "Đã cài nhưng không thấy / installed but not found: prometheus-alertmanager" ;;
    esac
  done
}

# ---------------------------------------------------------------------------------------------
# env files

# Set KEY=value in a KEY=value file, in place; rewrite only when the value changes.
env_set() {
  local file=$1 key=$2 value=$3 tmp
  if grep -qxF -- "$key=$value" "$file" 2>/dev/null; then return 0; fi
  tmp=$(mktemp "$file.XXXXXX")
  TMP_FILES+=("$tmp")
  awk -v k="$key" -v v="$value" '
    index($0, k "=") == 1 { if (!done) print k "=" v; done = 1; next }
    { print }
    END { if (!done) print k "=" v }' "$file" >"$tmp"
  chmod --reference="$file" -- "$tmp"
  mv -f -- "$tmp" "$file"
}

env_get() { awk -v k="$1" 'index($0, k "=") == 1 { print substr($0, length(k) + 2); exit }' "$2"; }

# Random values are generated once and never overwritten; derived lines follow the current ports.
ensure_secrets() {
  local key
  if [[ ! -e $SECRETS_FILE ]]; then
    (umask 077 && printf '# Generated by scripts/infra.sh; secret, mode 600; never commit.\n' >"$SECRETS_FILE")
  fi
  chmod 600 -- "$SECRETS_FILE"
  for key in "${SECRET_KEYS[@]}"; do
    if ! grep -q "^$key=" "$SECRETS_FILE"; then
      case $key in
        *_KEY | *_SECRET) printf '%s=%s\n' "$key" "$(rand_hex 32)" >>"$SECRETS_FILE" ;;
        *) printf '%s=%s\n' "$key" "$(rand_hex 24)" >>"$SECRETS_FILE" ;;
      esac
      [[ $key == DVC_ADMIN_DB_PASSWORD ]] && ADMIN_PW_NEW=1
    fi
  done
  env_set "$SECRETS_FILE" DVC_ADMIN_DATABASE_URL \
    "postgresql://$PG_SUPERUSER:$(admin_password)@127.0.0.1:$PG_PORT/$PG_DATABASE"
}

admin_password() { env_get DVC_ADMIN_DB_PASSWORD "$SECRETS_FILE"; }

write_infra_env() {
  local tmp
  tmp=$(mktemp "$INFRA_ENV.XXXXXX")
  TMP_FILES+=("$tmp")
  {
    printf '# Generated by scripts/infra.sh on every `up`; not secret (passwords are in secrets.env).\n'
    printf 'DVC_DATA_DIR=%q\n' "$DATA_DIR"
    printf 'DVC_PG_HOST=127.0.0.1\nDVC_PG_PORT=%s\nDVC_PG_DATABASE=%s\n' "$PG_PORT" "$PG_DATABASE"
    printf 'DVC_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$KAFKA_PORT"
    printf 'DVC_KAFKA_EXTERNAL_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$KAFKA_EXTERNAL_PORT"
    printf 'DVC_KAFKA_CA_FILE=%q\n' "$KAFKA_TLS_DIR/ca.crt"
    printf 'DVC_PROMETHEUS_URL=http://127.0.0.1:%s\n' "$PROM_PORT"
    printf 'DVC_ALERTMANAGER_URL=http://127.0.0.1:%s\n' "$AM_PORT"
  } >"$tmp"
  chmod 644 -- "$tmp"
  if cmp -s -- "$tmp" "$INFRA_ENV"; then rm -f -- "$tmp"; else mv -f -- "$tmp" "$INFRA_ENV"; fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

# The postgres OS user must be able to reach $PG_DATA; grant o+x on the ancestors that block it.
pg_grant_traversal() {
  local d path=
  ((EUID == 0)) || return 0
  as_pg test -x "$DATA_DIR" && return 0
  IFS=/ read -r -a parts <<<"${DATA_DIR#/}"
  for d in "${parts[@]}"; do
    path=$path/$d
    if ! as_pg test -x "$path"; then
      chmod o+x -- "$path"
      say "Đã cho phép $PG_OS_USER đi qua / granted o+x so $PG_OS_USER can traverse: $path"
    fi
  done
  as_pg test -x "$DATA_DIR" || die "Người dùng $PG_OS_USER không truy cập được / cannot reach $DATA_DIR"
}

pg_socket_dir() {
  # A unix socket path is limited to 107 bytes; without a socket PostgreSQL still serves TCP.
  if ((${#PG_SOCKET_DIR} + ${#PG_PORT} + 11 <= 107)); then echo "$PG_SOCKET_DIR"; else echo ""; fi
}

pg_prepare_dirs() {
  mkdir -p -- "$LOG_DIR"
  mkdir -p -- "$PG_SOCKET_DIR"
  touch -- "$(log_file postgres)"
  if ((EUID == 0)); then
    chown "$PG_OS_USER:" -- "$PG_SOCKET_DIR" "$(log_file postgres)"
    pg_grant_traversal
  fi
}

pg_init() {
  local tmp=$DATA_DIR/postgres.initdb-tmp pwfile log=$LOG_DIR/postgres-initdb.log
  if [[ -e $PG_DATA ]]; then
    rmdir -- "$PG_DATA" 2>/dev/null ||
      die "$PG_DATA tồn tại nhưng không phải cụm PostgreSQL / exists but is not a PostgreSQL cluster; xoá nó / remove it"
  fi
  say "Khởi tạo cụm PostgreSQL / initialising the PostgreSQL cluster: $PG_DATA"
  rm -rf -- "$tmp"
  mkdir -m 700 -- "$tmp"
  pwfile=$(mktemp "$RUN_DIR/pgpw.XXXXXX")
  TMP_FILES+=("$pwfile")
  admin_password >"$pwfile"
  if ((EUID == 0)); then chown "$PG_OS_USER:" -- "$tmp" "$pwfile"; fi
  if ! as_pg "$PG_BIN/initdb" -D "$tmp" -U "$PG_SUPERUSER" --pwfile="$pwfile" \
    --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$log" 2>&1 9>&-; then
    rm -rf -- "$tmp"
    cat -- "$log" >>"$(log_file postgres)"
    fail_component postgres "initdb thất bại / initdb failed"
  fi
  rm -f -- "$pwfile"
  # Local socket: the OS user that runs the server may act as dvc_admin (recovery if
  # secrets.env is lost); everything else is scram-sha-256, and TCP listens on 127.0.0.1 only.
  cat >"$tmp/pg_hba.conf" <<EOF
# Written by scripts/infra.sh (dvc-monitor). TYPE DATABASE USER ADDRESS METHOD
local   all   $PG_SUPERUSER                 peer map=dvc_local
local   all   all                       scram-sha-256
host    all   all   127.0.0.1/32        scram-sha-256
host    all   all   ::1/128             scram-sha-256
EOF
  printf '# Written by scripts/infra.sh\ndvc_local  %s  %s\n' "$(as_pg id -un)" "$PG_SUPERUSER" >"$tmp/pg_ident.conf"
  printf "\n# dvc-monitor: listen address, port and socket, rewritten by scripts/infra.sh\ninclude_if_exists = 'dvc_infra.conf'\n" >>"$tmp/postgresql.conf"
  if ((EUID == 0)); then chown "$PG_OS_USER:" -- "$tmp/pg_hba.conf" "$tmp/pg_ident.conf"; fi
  mv -- "$tmp" "$PG_DATA"
}

pg_write_conf() {
  local conf=$PG_DATA/dvc_infra.conf tmp
  tmp=$(mktemp "$RUN_DIR/pgconf.XXXXXX")
  TMP_FILES+=("$tmp")
  cat >"$tmp" <<EOF
# Written by scripts/infra.sh on every start; edit DVC_PG_PORT / DVC_DATA_DIR instead.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$(pg_socket_dir | sed "s/'/''/g")'
EOF
  if ! cmp -s -- "$tmp" "$conf"; then
    chmod 600 -- "$tmp"
    if ((EUID == 0)); then chown "$PG_OS_USER:" -- "$tmp"; fi
    mv -f -- "$tmp" "$conf"
  fi
}

pg_sql() { # dbname sql: over TCP with the password, exactly as the services connect
  PGPASSWORD=$(admin_password) PGCONNECT_TIMEOUT=3 PGSSLMODE=disable \
    "$PG_BIN/psql" -X -A -t -q -v ON_ERROR_STOP=1 \
    "host=127.0.0.1 port=$PG_PORT user=$PG_SUPERUSER dbname=$1" -c "$2" 2>&1
}

pg_wait_ready() {
  local deadline out
  deadline=$(deadline_in "$PG_DEADLINE")
  while :; do
    if out=$(pg_sql postgres 'select 1') && [[ $out == 1 ]]; then return 0; fi
    pg_postmaster_pid >/dev/null || return 1
    before_deadline "$deadline" || return 1
    sleep 0.3
  done
}

# secrets.env lost (or DVC_ADMIN_DB_PASSWORD removed) on an existing cluster: set the new password
# through the local socket, where the server's OS user may act as dvc_admin.
pg_reset_admin_password() {
  local dir
  dir=$(pg_socket_dir)
  [[ -n $dir ]] || die "secrets.env mới nhưng cụm cũ; xoá $PG_DATA / new secrets.env but old cluster: remove $PG_DATA"
  say "Đặt lại mật khẩu $PG_SUPERUSER theo secrets.env / resetting the $PG_SUPERUSER password from secrets.env"
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres \
    -c "ALTER ROLE $PG_SUPERUSER PASSWORD '$(admin_password)'" >/dev/null 9>&-
}

pg_ensure_database() {
  [[ $(pg_sql postgres "select 1 from pg_database where datname = '$PG_DATABASE'") == 1 ]] && return 0
  pg_sql postgres "create database $PG_DATABASE owner $PG_SUPERUSER" >/dev/null ||
    fail_component postgres "không tạo được CSDL / could not create database $PG_DATABASE"
}

pg_up() {
  local pid existed=0 log t0
  t0=$(now)
  log=$(log_file postgres)
  pg_prepare_dirs
  [[ -f $PG_DATA/PG_VERSION ]] && existed=1
  if pid=$(pg_postmaster_pid); then
    ((existed && ADMIN_PW_NEW)) && pg_reset_admin_password
    pg_wait_ready || fail_component postgres "đang chạy (pid $pid) nhưng không trả lời / running but not answering on 127.0.0.1:$PG_PORT"
    pg_ensure_database
    echo "$pid" >"$(pid_file postgres)"
    say "PostgreSQL đã chạy, giữ nguyên / already running, unchanged (pid $pid): 127.0.0.1:$PG_PORT"
    return 0
  fi
  ((existed)) || pg_init
  tcp_open "$PG_PORT" && fail_component postgres "cổng đã bị chiếm / port already in use: 127.0.0.1:$PG_PORT" no-log
  pg_write_conf
  [[ -s $log ]] && mv -f -- "$log" "$log.1" && touch -- "$log" && { ((EUID != 0)) || chown "$PG_OS_USER:" -- "$log"; }
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$log" -w -t "$PG_DEADLINE" -s start >>"$log" 2>&1 9>&-; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -s -m immediate stop >/dev/null 2>&1 9>&- || true
    fail_component postgres "pg_ctl start thất bại / failed"
  fi
  ((existed && ADMIN_PW_NEW)) && pg_reset_admin_password
  if ! pg_wait_ready; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -s -m fast stop >/dev/null 2>&1 9>&- || true
    fail_component postgres "không kết nối được bằng mật khẩu qua TCP / no password login over TCP: $(pg_sql postgres 'select 1' | tail -n 1)"
  fi
  pg_ensure_database
  pid=$(pg_postmaster_pid) || fail_component postgres "tiến trình đã thoát / the server exited"
  echo "$pid" >"$(pid_file postgres)"
  say "PostgreSQL sẵn sàng / ready: 127.0.0.1:$PG_PORT (pid $pid, $(elapsed "$t0") s)"
}

pg_down() {
  local pid
  if ! pid=$(pg_postmaster_pid); then
    rm -f -- "$(pid_file postgres)"
    say "PostgreSQL đã dừng sẵn / already stopped"
    return 0
  fi
  find_pg_bin || die "Không thấy pg_ctl / pg_ctl not found"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -s -m fast -w -t "$STOP_GRACE" stop >/dev/null 2>&1 9>&-; then
    warn "pg_ctl stop -m fast quá hạn, dùng immediate / timed out, using -m immediate"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -s -m immediate -w -t 10 stop >/dev/null 2>&1 9>&- || terminate "$pid"
  fi
  rm -f -- "$(pid_file postgres)"
  say "PostgreSQL đã dừng / stopped (pid $pid)"
}

# ---------------------------------------------------------------------------------------------
# Kafka

kafka_lib_ready() {
  [[ -f $KAFKA_LIB_DIR/kafka_2.13-$KAFKA_VERSION.jar ]] &&
    compgen -G "$KAFKA_LIB_DIR/log4j-slf4j2-impl-*.jar" >/dev/null &&
    compgen -G "$KAFKA_LIB_DIR/slf4j-api-2.*.jar" >/dev/null
}

# Build the jar classpath once per machine; shared by clones, so built in a temp dir under a lock
# and renamed into place.
ensure_kafka_lib() {
  local tmp log=$LOG_DIR/maven.log t0
  kafka_lib_ready && return 0
  mkdir -p -- "$(dirname "$KAFKA_LIB_DIR")" "$LOG_DIR"
  exec 8>"$KAFKA_LIB_DIR.lock"
  flock -w 900 8 || die "Không lấy được khoá / could not lock $KAFKA_LIB_DIR.lock"
  if ! kafka_lib_ready; then
    command -v mvn >/dev/null ||
      die "Không thấy Maven (mvn), cần để tải thư viện Kafka / Maven (mvn) not found, needed to fetch the Kafka jars: apt-get install -y --no-install-recommends maven"
    t0=$(now)
    say "Tải thư viện Kafka $KAFKA_VERSION từ Maven Central / fetching the Kafka $KAFKA_VERSION jars: $KAFKA_LIB_DIR"
    tmp=$(mktemp -d "$KAFKA_LIB_DIR.tmp.XXXXXX")
    TMP_FILES+=("$tmp")
    if ! mvn -B -q -f "$REPO_ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1 8>&- 9>&-; then
      exec 8>&-
      tail -n 30 -- "$log" >&2
      die "Không tải được thư viện Kafka / could not fetch the Kafka jars (log: $log)"
    fi
    rm -rf -- "$KAFKA_LIB_DIR"
    mv -- "$tmp" "$KAFKA_LIB_DIR"
    say "Đã tải thư viện Kafka / Kafka jars ready ($(ls "$KAFKA_LIB_DIR" | wc -l) jars, $(elapsed "$t0") s)"
  fi
  exec 8>&-
}

kafka_java_opts() {
  printf '%s\n' -Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$REPO_ROOT/deploy/kafka/log4j2.properties"
}

kafka_render_config() {
  local text tmp
  text=$(<"$REPO_ROOT/deploy/kafka/server.properties.template")
  text=${text//@BROKER_PORT@/$KAFKA_PORT}
  text=${text//@EXTERNAL_PORT@/$KAFKA_EXTERNAL_PORT}
  text=${text//@CONTROLLER_PORT@/$KAFKA_CONTROLLER_PORT}
  text=${text//@LOG_DIR@/$KAFKA_LOG_DIRS}
  text=${text//@TLS_DIR@/$KAFKA_TLS_DIR}
  text=${text//@ADMIN_PASSWORD@/$(env_get DVC_KAFKA_ADMIN_PASSWORD "$SECRETS_FILE")}
  mkdir -p -- "$KAFKA_DIR"
  tmp=$(mktemp "$KAFKA_CONFIG.XXXXXX")
  TMP_FILES+=("$tmp")
  printf '%s\n' "$text" >"$tmp"
  chmod 600 -- "$tmp"
  mv -f -- "$tmp" "$KAFKA_CONFIG"
}

kafka_cluster_id() {
  local -a opts
  mapfile -t opts < <(kafka_java_opts)
  # same shape as Kafka's Uuid.randomUuid(): 16 random bytes, url-safe base64, never starting with '-'
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s)
        break'
  else
    "$JAVA" -Xmx128m "${opts[@]:5}" -cp "$KAFKA_LIB_DIR/*" kafka.tools.StorageTool random-uuid 9>&-
  fi
}

# Format the KRaft log dir only once: a second `up` keeps topics and offsets.
kafka_format_once() {
  local cid log=$LOG_DIR/kafka-format.log
  local -a opts
  [[ -f $KAFKA_LOG_DIRS/meta.properties ]] && return 0
  rm -rf -- "$KAFKA_LOG_DIRS" # never formatted, so it holds no data
  cid=$(kafka_cluster_id)
  mapfile -t opts < <(kafka_java_opts)
  say "Định dạng lưu trữ Kafka / formatting Kafka storage (cluster id $cid)"
  if ! "$JAVA" -Xmx256m "${opts[@]:5}" -cp "$KAFKA_LIB_DIR/*" kafka.tools.StorageTool \
    format -t "$cid" -c "$KAFKA_CONFIG" >"$log" 2>&1 </dev/null 9>&-; then
    cat -- "$log" >>"$(log_file kafka)"
    fail_component kafka "kafka-storage format thất bại / format failed"
  fi
  echo "$cid" >"$KAFKA_DIR/cluster.id"
}

# One real metadata request through aiokafka; exit 0 ok, 1 failed, 3 aiokafka not importable.
kafka_metadata_ok() {
  DVC_KAFKA_ADMIN_PASSWORD=$(env_get DVC_KAFKA_ADMIN_PASSWORD "$SECRETS_FILE") \
    timeout 30 python3 - "127.0.0.1:$KAFKA_PORT" <<'EOF' 2>/dev/null
import asyncio, os, sys
try:
    from aiokafka.admin import AIOKafkaAdminClient
except Exception:
    sys.exit(3)

async def main() -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=sys.argv[1], request_timeout_ms=5000, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN", sasl_plain_username="admin",
        sasl_plain_password=os.environ["DVC_KAFKA_ADMIN_PASSWORD"])
    await admin.start()
    try:
        await admin.describe_cluster()
    finally:
        await admin.close()

try:
    asyncio.run(main())
except Exception:
    sys.exit(1)
EOF
}

KAFKA_TCP_ONLY_WARNED=0
kafka_wait_ready() {
  local pid=$1 deadline rc
  deadline=$(deadline_in "$KAFKA_DEADLINE")
  while :; do
    pid_alive "$pid" || return 1
    if grep -q 'Kafka Server started' "$(log_file kafka)" 2>/dev/null && tcp_open "$KAFKA_PORT"; then
      rc=0
      kafka_metadata_ok || rc=$?
      ((rc == 0)) && return 0
      if ((rc == 3)); then
        ((KAFKA_TCP_ONLY_WARNED)) ||
          warn "python3 không import được aiokafka, chỉ kiểm tra cổng TCP / aiokafka not importable by python3, checking the TCP port only"
        KAFKA_TCP_ONLY_WARNED=1
        return 0
      fi
    fi
    before_deadline "$deadline" || return 1
    sleep 0.5
  done
}

# The project's Python (with confluent-kafka), for `dvc kafka setup`.
project_python() {
  local py
  for py in ${VIRTUAL_ENV:+"$VIRTUAL_ENV/bin/python"} "$REPO_ROOT/.venv/bin/python" python3; do
    if (cd "$REPO_ROOT" && "$py" -c 'import confluent_kafka, cli.kafka') >/dev/null 2>&1 9>&-; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

# Principals (SCRAM-SHA-512), topics and ACLs: idempotent, at every `up` (also on a log dir that was
# formatted before Kafka had authentication: the static admin creates what is missing).
kafka_setup() {
  local py log=$LOG_DIR/kafka-setup.log
  if ! py=$(project_python); then
    warn "chưa có môi trường Python của dự án; chạy / the project's Python is not installed; run: DVC_KAFKA_USERNAME=admin DVC_KAFKA_SASL_MECHANISM=PLAIN DVC_KAFKA_PASSWORD=... dvc kafka setup (with secrets.env loaded)"
    return 0
  fi
  if ! (
    set -a
    # shellcheck disable=SC1090
    . "$SECRETS_FILE"
    set +a
    cd "$REPO_ROOT"
    DVC_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT DVC_KAFKA_USERNAME=admin \
      DVC_KAFKA_PASSWORD=$DVC_KAFKA_ADMIN_PASSWORD DVC_KAFKA_SASL_MECHANISM=PLAIN \
      DVC_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT exec "$py" -m cli.main kafka setup
  ) >"$log" 2>&1 </dev/null 8>&- 9>&-; then
    fail_component kafka "dvc kafka setup thất bại / failed" "$log"
  fi
  say "  $(tail -n 1 -- "$log")"
}

kafka_up() {
  local pid log t0
  t0=$(now)
  log=$(log_file kafka)
  bash "$REPO_ROOT/scripts/kafka-certs.sh" "$KAFKA_TLS_DIR" localhost 127.0.0.1 >/dev/null 9>&- ||
    fail_component kafka "không tạo được chứng chỉ TLS / could not make the TLS certificate" no-log
  if pid=$(running_pid kafka); then
    kafka_wait_ready "$pid" || fail_component kafka "đang chạy (pid $pid) nhưng không trả lời (cấu hình cũ, không xác thực? khởi động lại / an old, unauthenticated configuration? restart: scripts/infra.sh down kafka && scripts/infra.sh up kafka) / running but not answering on 127.0.0.1:$KAFKA_PORT"
    say "Kafka đã chạy, giữ nguyên / already running, unchanged (pid $pid): 127.0.0.1:$KAFKA_PORT"
    kafka_setup
    return 0
  fi
  rm -f -- "$(pid_file kafka)"
  mkdir -p -- "$LOG_DIR" "$KAFKA_DIR"
  ensure_kafka_lib
  local p
  for p in "$KAFKA_PORT" "$KAFKA_EXTERNAL_PORT" "$KAFKA_CONTROLLER_PORT"; do
    tcp_open "$p" && fail_component kafka "cổng đã bị chiếm / port already in use: 127.0.0.1:$p" no-log
  done
  kafka_render_config
  kafka_format_once
  [[ -s $log ]] && mv -f -- "$log" "$log.1"
  local -a opts
  mapfile -t opts < <(kafka_java_opts)
  (cd "$KAFKA_DIR" && exec setsid "$JAVA" "${opts[@]}" -cp "$KAFKA_LIB_DIR/*" kafka.Kafka "$KAFKA_CONFIG") \
    </dev/null >>"$log" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$(pid_file kafka)"
  if ! kafka_wait_ready "$pid"; then
    local why="không sẵn sàng sau ${KAFKA_DEADLINE}s / not ready after ${KAFKA_DEADLINE}s"
    pid_alive "$pid" || why="tiến trình đã thoát / the process exited"
    terminate "$pid"
    rm -f -- "$(pid_file kafka)"
    fail_component kafka "$why"
  fi
  say "Kafka sẵn sàng / ready: 127.0.0.1:$KAFKA_PORT, TLS 127.0.0.1:$KAFKA_EXTERNAL_PORT (pid $pid, $(elapsed "$t0") s)"
  kafka_setup
}

# ---------------------------------------------------------------------------------------------
# Prometheus

# Render config + rules into $1 (a directory): prometheus.yml and rules/*.yml.
prom_render_into() {
  local out=$1 text f
  text=$(<"$REPO_ROOT/deploy/prometheus/prometheus.native.yml")
  text=${text//'${DVC_INGEST_HTTP_PORT}'/$INGEST_HTTP_PORT}
  text=${text//'${DVC_METRICS_HTTP_PORT}'/$METRICS_HTTP_PORT}
  text=${text//'${DVC_ALERTS_HTTP_PORT}'/$ALERTS_HTTP_PORT}
  text=${text//'${DVC_PROMETHEUS_PORT}'/$PROM_PORT}
  text=${text//'${DVC_ALERTMANAGER_PORT}'/$AM_PORT}
  mkdir -p -- "$out/rules"
  printf '%s\n' "$text" >"$out/prometheus.yml"
  for f in "$REPO_ROOT"/deploy/prometheus/rules/*.yml; do
    [[ -f $f ]] && cp -- "$f" "$out/rules/"
  done
  return 0
}

# True when the rendered config (with rules) differs from what the running server loaded.
prom_config_changed() {
  local tmp
  tmp=$(mktemp -d "$RUN_DIR/promcfg.XXXXXX")
  TMP_FILES+=("$tmp")
  prom_render_into "$tmp"
  ! diff -rq -- "$tmp/prometheus.yml" "$PROM_CONFIG" >/dev/null 2>&1 ||
    ! diff -rq -- "$tmp/rules" "$PROM_DIR/rules" >/dev/null 2>&1
}

prom_wait_ready() {
  local pid=$1 deadline
  deadline=$(deadline_in "$PROM_DEADLINE")
  while :; do
    pid_alive "$pid" || return 1
    http_ok "$PROM_PORT" /-/ready && return 0
    before_deadline "$deadline" || return 1
    sleep 0.3
  done
}

prom_up() {
  local pid log t0 tmp
  t0=$(now)
  log=$(log_file prometheus)
  if pid=$(running_pid prometheus); then
    prom_wait_ready "$pid" || fail_component prometheus "đang chạy (pid $pid) nhưng /-/ready không trả 200 / running but /-/ready is not 200"
    say "Prometheus đã chạy, giữ nguyên / already running, unchanged (pid $pid): http://127.0.0.1:$PROM_PORT"
    if prom_config_changed; then
      say "  Cấu hình hoặc rules đã đổi; áp dụng bằng / config or rules changed; apply with: scripts/infra.sh down prometheus && scripts/infra.sh up prometheus"
    fi
    return 0
  fi
  rm -f -- "$(pid_file prometheus)"
  mkdir -p -- "$LOG_DIR" "$PROM_DIR" "$PROM_TSDB"
  tmp=$(mktemp -d "$PROM_DIR/render.XXXXXX")
  TMP_FILES+=("$tmp")
  prom_render_into "$tmp"
  if command -v promtool >/dev/null &&
    ! promtool check config "$tmp/prometheus.yml" >"$LOG_DIR/promtool.log" 2>&1 9>&-; then
    fail_component prometheus "cấu hình không hợp lệ / invalid config (promtool check config)" "$LOG_DIR/promtool.log"
  fi
  rm -rf -- "$PROM_DIR/rules"
  mv -- "$tmp/rules" "$PROM_DIR/rules"
  mv -f -- "$tmp/prometheus.yml" "$PROM_CONFIG"
  tcp_open "$PROM_PORT" && fail_component prometheus "cổng đã bị chiếm / port already in use: 127.0.0.1:$PROM_PORT" no-log
  [[ -s $log ]] && mv -f -- "$log" "$log.1"
  (cd "$PROM_DIR" && exec setsid "$PROM_BIN" \
    "--config.file=$PROM_CONFIG" \
    "--web.listen-address=127.0.0.1:$PROM_PORT" \
    "--storage.tsdb.path=$PROM_TSDB" \
    --web.enable-lifecycle) </dev/null >>"$log" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$(pid_file prometheus)"
  if ! prom_wait_ready "$pid"; then
    local why="/-/ready không trả 200 sau ${PROM_DEADLINE}s / not ready after ${PROM_DEADLINE}s"
    pid_alive "$pid" || why="tiến trình đã thoát / the process exited"
    terminate "$pid"
    rm -f -- "$(pid_file prometheus)"
    fail_component prometheus "$why"
  fi
  say "Prometheus sẵn sàng / ready: http://127.0.0.1:$PROM_PORT (pid $pid, $(elapsed "$t0") s)"
}

# ---------------------------------------------------------------------------------------------
# Alertmanager (the platform alerts of Prometheus, to the operators' e-mail and webhook)

am_render() { # output file
  DVC_OPERATOR_EMAILS=${DVC_OPERATOR_EMAILS:-operators@localhost} \
    sh "$REPO_ROOT/deploy/alertmanager/render.sh" "$REPO_ROOT/deploy/alertmanager/alertmanager.yml.template" "$1"
}

am_wait_ready() {
  local pid=$1 deadline
  deadline=$(deadline_in "$AM_DEADLINE")
  while :; do
    pid_alive "$pid" || return 1
    http_ok "$AM_PORT" /-/ready && return 0
    before_deadline "$deadline" || return 1
    sleep 0.3
  done
}

am_up() {
  local pid log t0 tmp
  t0=$(now)
  log=$(log_file alertmanager)
  mkdir -p -- "$LOG_DIR" "$AM_DIR" "$AM_DATA"
  tmp=$(mktemp "$AM_DIR/render.XXXXXX")
  TMP_FILES+=("$tmp" "$tmp.tmp")
  am_render "$tmp" 2>"$LOG_DIR/alertmanager-render.log" ||
    fail_component alertmanager "cấu hình không hợp lệ / invalid settings" "$LOG_DIR/alertmanager-render.log"
  [[ ${DVC_OPERATOR_EMAILS:-} ]] ||
    warn "DVC_OPERATOR_EMAILS chưa đặt, cảnh báo nền tảng gửi tới operators@localhost / not set, platform alerts go to operators@localhost"
  if pid=$(running_pid alertmanager); then
    am_wait_ready "$pid" || fail_component alertmanager "đang chạy (pid $pid) nhưng /-/ready không trả 200 / running but /-/ready is not 200"
    say "Alertmanager đã chạy, giữ nguyên / already running, unchanged (pid $pid): http://127.0.0.1:$AM_PORT"
    if ! cmp -s -- "$tmp" "$AM_CONFIG"; then
      say "  Cấu hình đã đổi; áp dụng bằng / config changed; apply with: scripts/infra.sh down alertmanager && scripts/infra.sh up alertmanager"
    fi
    return 0
  fi
  rm -f -- "$(pid_file alertmanager)"
  if command -v amtool >/dev/null && ! amtool check-config "$tmp" >"$LOG_DIR/amtool.log" 2>&1 9>&-; then
    fail_component alertmanager "cấu hình không hợp lệ / invalid config (amtool check-config)" "$LOG_DIR/amtool.log"
  fi
  mv -f -- "$tmp" "$AM_CONFIG"
  tcp_open "$AM_PORT" && fail_component alertmanager "cổng đã bị chiếm / port already in use: 127.0.0.1:$AM_PORT" no-log
  [[ -s $log ]] && mv -f -- "$log" "$log.1"
  # --cluster.listen-address= (empty): no gossip port (it would listen on 0.0.0.0:9094)
  (cd "$AM_DIR" && exec setsid "$AM_BIN" \
    "--config.file=$AM_CONFIG" \
    "--storage.path=$AM_DATA" \
    "--web.listen-address=127.0.0.1:$AM_PORT" \
    "--cluster.listen-address=") </dev/null >>"$log" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$(pid_file alertmanager)"
  if ! am_wait_ready "$pid"; then
    local why="/-/ready không trả 200 sau ${AM_DEADLINE}s / not ready after ${AM_DEADLINE}s"
    pid_alive "$pid" || why="tiến trình đã thoát / the process exited"
    terminate "$pid"
    rm -f -- "$(pid_file alertmanager)"
    fail_component alertmanager "$why"
  fi
  say "Alertmanager sẵn sàng / ready: http://127.0.0.1:$AM_PORT (pid $pid, $(elapsed "$t0") s)"
}

# ---------------------------------------------------------------------------------------------
# commands

generic_down() {
  local comp=$1 pid
  if pid=$(running_pid "$comp"); then
    terminate "$pid"
    say "$(label "$comp") đã dừng / stopped (pid $pid)"
  else
    say "$(label "$comp") đã dừng sẵn / already stopped"
  fi
  rm -f -- "$(pid_file "$comp")"
}

cmd_up() {
  local comp t0
  t0=$(now)
  mkdir -p -- "$DATA_DIR" "$LOG_DIR"
  acquire_lock
  ensure_packages "$@"
  ensure_secrets
  write_infra_env
  for comp in "$@"; do
    case $comp in
      postgres) pg_up ;;
      kafka) kafka_up ;;
      prometheus) prom_up ;;
      alertmanager) am_up ;;
    esac
  done
  say ""
  say "Hạ tầng sẵn sàng sau $(elapsed "$t0") s / infrastructure ready after $(elapsed "$t0") s:"
  for comp in "$@"; do
    printf '  %-11s %s\n' "$(label "$comp")" "$(address "$comp")"
  done
  say "  Biến môi trường / env files: $INFRA_ENV, $SECRETS_FILE"
}

cmd_down() {
  local comp i
  [[ -d $DATA_DIR ]] || { say "Không có gì đang chạy / nothing running ($DATA_DIR does not exist)"; return 0; }
  acquire_lock
  for ((i = $# ; i >= 1; i--)); do
    comp=${!i}
    case $comp in
      postgres) pg_down ;;
      *) generic_down "$comp" ;;
    esac
  done
}

cmd_status() {
  local comp pid state rc=0 port
  for comp in "$@"; do
    case $comp in postgres) port=$PG_PORT ;; kafka) port=$KAFKA_PORT ;; prometheus) port=$PROM_PORT ;; alertmanager) port=$AM_PORT ;; esac
    if pid=$(running_pid "$comp"); then
      if tcp_open "$port"; then
        state="đang chạy / running (pid $pid)"
      else
        state="có tiến trình nhưng cổng chưa mở / process up, port not open (pid $pid)"
        rc=3
      fi
    else
      state="đã dừng / stopped"
      rc=3
    fi
    printf '%-11s %-24s %s\n' "$(label "$comp")" "$(address "$comp")" "$state"
  done
  return "$rc"
}

cmd_logs() {
  local comp files=() follow
  for comp in "$@"; do
    [[ -f $(log_file "$comp") ]] && files+=("$(log_file "$comp")")
  done
  ((${#files[@]})) || { say "Chưa có log / no logs yet in $LOG_DIR"; return 0; }
  follow=${DVC_LOGS_FOLLOW:-}
  [[ -n $follow ]] || { [[ -t 1 ]] && follow=1 || follow=0; }
  if [[ $follow == 1 ]]; then
    exec tail -n 100 -F -- "${files[@]}"
  fi
  tail -n 100 -- "${files[@]}"
}

main() {
  (($# >= 1 && $# <= 2)) || usage
  local cmd=$1
  local -a comps=("${COMPONENTS[@]}")
  if (($# == 2)); then
    case $2 in postgres | kafka | prometheus | alertmanager) comps=("$2") ;; *) usage ;; esac
  fi
  check_port_number DVC_PG_PORT "$PG_PORT"
  check_port_number DVC_KAFKA_PORT "$KAFKA_PORT"
  check_port_number DVC_KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  check_port_number DVC_KAFKA_EXTERNAL_PORT "$KAFKA_EXTERNAL_PORT"
  check_port_number DVC_PROMETHEUS_PORT "$PROM_PORT"
  check_port_number DVC_ALERTMANAGER_PORT "$AM_PORT"
  check_port_number DVC_INGEST_HTTP_PORT "$INGEST_HTTP_PORT"
  check_port_number DVC_METRICS_HTTP_PORT "$METRICS_HTTP_PORT"
  check_port_number DVC_ALERTS_HTTP_PORT "$ALERTS_HTTP_PORT"
  case $cmd in
    up) cmd_up "${comps[@]}" ;;
    down) cmd_down "${comps[@]}" ;;
    status) cmd_status "${comps[@]}" ;;
    logs) cmd_logs "${comps[@]}" ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
