#!/usr/bin/env bash
# The main command: on a fresh machine, bring the whole system up natively (PostgreSQL, Kafka,
# Prometheus, the three services, an SMTP sink) and play the simulator in accelerated mode over the
# last two weeks, so KPIs move and the first alerts arrive within minutes. Ctrl-C stops everything.
#
# Environment: DVC_REGISTRY (default deploy/units/ha-tinh-2021.yaml), DVC_DEMO_DAYS (14),
# DVC_DEMO_SPEED (simulated seconds per real second, default 5000: two weeks in about 4 minutes),
# DVC_DEMO_SCALE (1.0 = the province's real volume), DVC_SMTP_PORT (2525), DVC_*_HTTP_PORT (8001-8003),
# DVC_NO_SIMULATOR=1 to start the services without the demo stream.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

INGEST_PORT=${DVC_INGEST_HTTP_PORT:-8001}
METRICS_PORT=${DVC_METRICS_HTTP_PORT:-8002}
ALERTS_PORT=${DVC_ALERTS_HTTP_PORT:-8003}
SMTP_PORT=${DVC_SMTP_PORT:-2525}
REGISTRY=${DVC_REGISTRY:-deploy/units/ha-tinh-2021.yaml}
DEMO_DAYS=${DVC_DEMO_DAYS:-14}
DEMO_SPEED=${DVC_DEMO_SPEED:-5000}
DEMO_SCALE=${DVC_DEMO_SCALE:-1.0}
LOGS=$DVC_DATA_DIR/logs
MAIL_DIR=$DVC_DATA_DIR/mail
PIDS=()

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "Đang dừng / stopping..."
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  bash scripts/infra.sh down || true
  echo "Đã dừng tất cả / everything stopped"
}

start() {  # name, command...
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
}

wait_ready() {  # name, port
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1; then
      echo "$1 sẵn sàng / ready: http://127.0.0.1:$2"
      return 0
    fi
    sleep 0.5
  done
  echo "LỖI / ERROR: $1 không sẵn sàng / not ready; log: $LOGS/$1.log" >&2
  tail -n 30 "$LOGS/$1.log" >&2
  return 1
}

service_env() {  # role password variable
  local role=$1 password=$2
  echo "DVC_DATABASE_URL=postgresql://$role:${!password}@127.0.0.1:$DVC_PG_PORT/$DVC_PG_DATABASE"
}

kafka_env() {  # principal: its name and password (secrets.env), as `env` arguments
  local name=$1 password
  password=DVC_KAFKA_$(echo "$name" | tr 'a-z-' 'A-Z_')_PASSWORD
  echo "DVC_KAFKA_USERNAME=$name DVC_KAFKA_PASSWORD=${!password}"
}

ensure_python_env
bash scripts/infra.sh up
load_infra_env
mkdir -p "$LOGS" "$MAIL_DIR"/tmp "$MAIL_DIR"/new "$MAIL_DIR"/cur  # a Maildir
trap stop_all INT TERM EXIT

DVC_DATABASE_URL=$DVC_ADMIN_DATABASE_URL dvc db migrate
DVC_DATABASE_URL=$DVC_ADMIN_DATABASE_URL dvc units load "$REGISTRY"

start smtp python -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$MAIL_DIR"
# shellcheck disable=SC2046  # kafka_env prints two words
start ingest env "$(service_env dvc_ingest DVC_INGEST_DB_PASSWORD)" $(kafka_env ingest) DVC_HTTP_PORT="$INGEST_PORT" \
  python -m services.ingest.main
# shellcheck disable=SC2046
start metrics env "$(service_env dvc_metrics DVC_METRICS_DB_PASSWORD)" $(kafka_env metrics) DVC_HTTP_PORT="$METRICS_PORT" \
  python -m services.metrics.main
# shellcheck disable=SC2046
start alerts env "$(service_env dvc_alerts DVC_ALERTS_DB_PASSWORD)" $(kafka_env alerts) DVC_HTTP_PORT="$ALERTS_PORT" \
  DVC_SMTP_HOST=127.0.0.1 DVC_SMTP_PORT="$SMTP_PORT" DVC_PUBLIC_URL="http://127.0.0.1:$ALERTS_PORT" \
  DVC_ALERTS_EVALUATION_SECONDS=15 DVC_ALERTS_CONFIRM_SECONDS=30 DVC_ALERTS_RETRY_BASE_SECONDS=5 \
  python -m services.alerts.main
wait_ready ingest "$INGEST_PORT"
wait_ready metrics "$METRICS_PORT"
wait_ready alerts "$ALERTS_PORT"

month=$(TZ=Asia/Ho_Chi_Minh date +%Y-%m)
cat <<EOF

dvc-monitor đang chạy / is running. Xem / look at:
  Chỉ số toàn tỉnh / province KPIs:  http://127.0.0.1:$METRICS_PORT/api/v1/kpis?scope=province&period=month:$month
  Đơn vị / units and statuses:       http://127.0.0.1:$METRICS_PORT/api/v1/units   (API docs: /docs)
  Cảnh báo / alerts:                 http://127.0.0.1:$ALERTS_PORT/api/v1/alerts   (API docs: /docs)
  Prometheus:                        $DVC_PROMETHEUS_URL   (e.g. dvc_kpi_numerator, dvc_kpi_denominator)
  Thư thông báo / notification mail: $MAIL_DIR (Maildir; SMTP sink on 127.0.0.1:$SMTP_PORT)
  Nhật ký / logs:                    $LOGS
  Grafana: with docker compose (see README); natively, push the boards with \`dvc grafana push\`.
Nhấn Ctrl-C để dừng tất cả / press Ctrl-C to stop everything.
EOF

if [ "${DVC_NO_SIMULATOR:-0}" != 1 ]; then
  demo_start=$(TZ=Asia/Ho_Chi_Minh date -d "-$DEMO_DAYS days" +%Y-%m-%d)
  echo "Mô phỏng $DEMO_DAYS ngày từ $demo_start, tăng tốc x$DEMO_SPEED / simulating $DEMO_DAYS days from $demo_start at x$DEMO_SPEED"
  # shellcheck disable=SC2046
  env $(kafka_env simulator) dvc simulate --mode accelerated --speed "$DEMO_SPEED" --start "$demo_start" --days "$DEMO_DAYS" \
    --scale "$DEMO_SCALE" --bad-rate 0.002 --duplicate-rate 0.01 --shuffle-window 200 \
    --registry "$REGISTRY" --seed "$(date +%s)" &
  PIDS+=($!)
fi
wait "${PIDS[@]}"
