#!/usr/bin/env bash
# The main command: on a fresh machine, bring the whole system up natively (PostgreSQL, Kafka,
# Prometheus, the three services, an SMTP sink), replay the last two weeks of simulated history into
# Kafka as fast as possible (`dvc simulate --mode fast`) BEFORE ingest starts, then keep simulating in
# real time. While ingest works through the history, the broker timestamps of the waiting records (the
# events' own times) keep the completeness watermark days behind, so the alerts service evaluates but
# sends nothing; once ingest has caught up, it sends only what is true then. Ctrl-C stops everything it
# started within seconds (infrastructure that was already running is left running).
#
# Environment: DVC_REGISTRY (default deploy/units/ha-tinh-2021.yaml), DVC_DEMO_DAYS (14: the days of
# history replayed, and of the live simulation after it), DVC_DEMO_SCALE (1.0 = the province's real
# volume), DVC_DEMO_TRUTH=<dir> to write the simulator's ground truth there (history.jsonl, live.jsonl:
# every message sent, one JSON line each; tests/e2e/test_up_truth.py checks the mails against it),
# DVC_SMTP_PORT (2525), DVC_*_HTTP_PORT (8001-8003), DVC_NO_SIMULATOR=1 to start the services without
# the demo stream.
set -euo pipefail
# Ctrl-C must work even when this script was started in the background of another script
# (`bash scripts/up.sh &`), which starts it with SIGINT ignored: bash cannot trap a signal that was
# ignored on entry, so start again once with SIGINT at its default.
ignored=$(awk '/^SigIgn:/ { print "0x" $2 }' "/proc/$$/status" 2>/dev/null || true)
if ((${ignored:-0} & 2)) && [ -z "${DVC_UP_SIGINT_RESET:-}" ]; then
  if env --default-signal=INT true 2>/dev/null; then
    DVC_UP_SIGINT_RESET=1 exec env --default-signal=INT bash "${BASH_SOURCE[0]}" "$@"
  fi
  echo "CẢNH BÁO / WARNING: SIGINT bị bỏ qua, Ctrl-C sẽ không dừng / SIGINT is ignored, Ctrl-C will not stop this script" >&2
fi
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

INGEST_PORT=${DVC_INGEST_HTTP_PORT:-8001}
METRICS_PORT=${DVC_METRICS_HTTP_PORT:-8002}
ALERTS_PORT=${DVC_ALERTS_HTTP_PORT:-8003}
SMTP_PORT=${DVC_SMTP_PORT:-2525}
REGISTRY=${DVC_REGISTRY:-deploy/units/ha-tinh-2021.yaml}
DEMO_DAYS=${DVC_DEMO_DAYS:-14}
DEMO_SCALE=${DVC_DEMO_SCALE:-1.0}
TRUTH_DIR=${DVC_DEMO_TRUTH:-}
LOGS=$DVC_DATA_DIR/logs
MAIL_DIR=$DVC_DATA_DIR/mail
STOP_GRACE=5      # seconds a service gets to finish its batch after SIGTERM, then SIGKILL
PIDS=()           # long-running children; each leads its own session (setsid)
INFRA_OWNED=1     # 0: the infrastructure was already running before us, so we leave it running

# Process handling. Every long-running child runs under setsid, in its own session and process
# group: a Ctrl-C (SIGINT to the terminal's foreground group) reaches this script only, never the
# children (a background child of a non-interactive bash ignores SIGINT anyway). The trap then stops
# everything in order: the simulator and the services with SIGTERM (SIGKILL after STOP_GRACE s: a
# killed batch is redelivered), then the infrastructure with `infra.sh down`, itself under setsid:
# a second Ctrl-C used to kill it halfway, leaving PostgreSQL and Kafka running.

group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_children() {
  local pid i alive
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for ((i = 0; i < STOP_GRACE * 10; i++)); do
    alive=0
    for pid in "${PIDS[@]}"; do group_alive "$pid" && alive=1; done
    ((alive)) || break
    sleep 0.1 || true  # a Ctrl-C kills the sleep, not the loop
  done
  for pid in "${PIDS[@]}"; do
    if group_alive "$pid"; then
      echo "pid $pid chưa dừng sau ${STOP_GRACE}s, gửi SIGKILL / still running after ${STOP_GRACE}s, sending SIGKILL" >&2
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

stop_all() {  # exit status
  trap - EXIT
  trap '' INT TERM HUP  # a second Ctrl-C while stopping changes nothing: the stop finishes
  set +e                # and no failed command (an echo to a closed terminal) cuts it short
  echo
  echo "Đang dừng / stopping..."
  stop_children
  if ((INFRA_OWNED)); then
    setsid -w bash scripts/infra.sh down || true
  else
    echo "Hạ tầng đã chạy trước up.sh, giữ nguyên / infrastructure was running before up.sh, left running (scripts/infra.sh down)"
  fi
  echo "Đã dừng tất cả / everything stopped"
  exit "$1"
}

start() {  # name, command...: in the background, in its own session, output to its log
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
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
if bash scripts/infra.sh status >/dev/null 2>&1; then INFRA_OWNED=0; fi
trap 'stop_all $?' EXIT
trap 'stop_all 130' INT
trap 'stop_all 143' TERM
trap 'stop_all 129' HUP
# Alertmanager mails the platform alerts to the demo's SMTP sink (plain SMTP on loopback).
DVC_ALERTMANAGER_SMARTHOST=127.0.0.1:$SMTP_PORT DVC_SMTP_TLS=off \
  DVC_OPERATOR_EMAILS=${DVC_OPERATOR_EMAILS:-operators@localhost} bash scripts/infra.sh up
load_infra_env
mkdir -p "$LOGS" "$MAIL_DIR"/tmp "$MAIL_DIR"/new "$MAIL_DIR"/cur  # a Maildir
HISTORY_TRUTH=() LIVE_TRUTH=()  # the simulator's --truth options when DVC_DEMO_TRUTH is set
if [ -n "$TRUTH_DIR" ]; then
  mkdir -p "$TRUTH_DIR"
  HISTORY_TRUTH=(--truth "$TRUTH_DIR/history.jsonl") LIVE_TRUTH=(--truth "$TRUTH_DIR/live.jsonl")
fi

DVC_DATABASE_URL=$DVC_ADMIN_DATABASE_URL dvc db migrate
DVC_DATABASE_URL=$DVC_ADMIN_DATABASE_URL dvc units load "$REGISTRY"
DVC_DATABASE_URL=$DVC_ADMIN_DATABASE_URL dvc procedures load deploy/procedures/ha-tinh-sample.yaml
# A viewer token for this demo's API reads (the APIs refuse anonymous reads); valid one day.
DEMO_TOKEN=$(DVC_DATABASE_URL=$DVC_ADMIN_DATABASE_URL dvc tokens create --name "demo up.sh" --role viewer --days 1 2>/dev/null)

if [ "${DVC_NO_SIMULATOR:-0}" != 1 ]; then
  history_start=$(TZ=Asia/Ho_Chi_Minh date -d "-$DEMO_DAYS days" +%Y-%m-%dT%H:%M)
  echo "Phát lại $DEMO_DAYS ngày lịch sử từ $history_start (nhanh nhất có thể) / replaying $DEMO_DAYS days of history from $history_start (fast)"
  # shellcheck disable=SC2046
  env $(kafka_env simulator) dvc simulate --mode fast --start "$history_start" --days "$DEMO_DAYS" \
    --scale "$DEMO_SCALE" --bad-rate 0.002 --duplicate-rate 0.01 --shuffle-window 200 \
    --registry "$REGISTRY" --seed 1 "${HISTORY_TRUTH[@]}" </dev/null
fi
start smtp python -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$MAIL_DIR"
# shellcheck disable=SC2046  # kafka_env prints two words
start ingest env "$(service_env dvc_ingest DVC_INGEST_DB_PASSWORD)" $(kafka_env ingest) DVC_HTTP_PORT="$INGEST_PORT" \
  python -m services.ingest.main
# shellcheck disable=SC2046
start metrics env "$(service_env dvc_metrics DVC_METRICS_DB_PASSWORD)" $(kafka_env metrics) DVC_HTTP_PORT="$METRICS_PORT" \
  DVC_ALERTS_URL="http://127.0.0.1:$ALERTS_PORT" python -m services.metrics.main
# shellcheck disable=SC2046
start alerts env "$(service_env dvc_alerts DVC_ALERTS_DB_PASSWORD)" $(kafka_env alerts) DVC_HTTP_PORT="$ALERTS_PORT" \
  DVC_SMTP_HOST=127.0.0.1 DVC_SMTP_PORT="$SMTP_PORT" DVC_SMTP_TLS=off DVC_PUBLIC_URL="http://127.0.0.1:$ALERTS_PORT" \
  DVC_PAGES_URL="http://127.0.0.1:$METRICS_PORT" \
  DVC_ALERTS_EVALUATION_SECONDS=15 DVC_ALERTS_CONFIRM_SECONDS=30 DVC_ALERTS_RETRY_BASE_SECONDS=5 \
  python -m services.alerts.main
wait_ready ingest "$INGEST_PORT"
wait_ready metrics "$METRICS_PORT"
wait_ready alerts "$ALERTS_PORT"

month=$(TZ=Asia/Ho_Chi_Minh date +%Y-%m)
cat <<EOF

dvc-monitor đang chạy / is running. Xem / look at:
  Tổng quan tỉnh / province overview: http://127.0.0.1:$METRICS_PORT/pages/province
    (đăng nhập bằng mã đọc dưới đây / sign in with the viewer token below; trang đơn vị / unit pages:
    /pages/units/<id>, liên kết ký sẵn trong thư cảnh báo / signed links in the alert mails)
  Chỉ số toàn tỉnh / province KPIs:  http://127.0.0.1:$METRICS_PORT/api/v1/kpis?scope=province&period=month:$month
  Đơn vị / units and statuses:       http://127.0.0.1:$METRICS_PORT/api/v1/units   (API docs: /docs)
  Cảnh báo / alerts:                 http://127.0.0.1:$ALERTS_PORT/api/v1/alerts   (API docs: /docs)
  Prometheus:                        $DVC_PROMETHEUS_URL   (e.g. dvc_kpi_numerator, dvc_kpi_denominator)
  Thư thông báo / notification mail: $MAIL_DIR (Maildir; SMTP sink on 127.0.0.1:$SMTP_PORT)
  Nhật ký / logs:                    $LOGS
  Mã đọc API / API viewer token:     curl -H "Authorization: Bearer $DEMO_TOKEN" <URL>   (1 ngày / 1 day)
  Grafana: không chạy ở chế độ này, các bảng có khi chạy docker compose (README) / not started natively,
    the boards come with docker compose (README) or \`dvc grafana push\`.
Nhấn Ctrl-C để dừng tất cả / press Ctrl-C to stop everything.
EOF

if [ "${DVC_NO_SIMULATOR:-0}" != 1 ]; then
  echo "Tiếp tục mô phỏng theo thời gian thực / continuing the simulation in real time"
  # output to the terminal, like the messages above; another seed: other case ids than the history's
  # shellcheck disable=SC2046
  setsid env $(kafka_env simulator) dvc simulate --mode realtime --days "$DEMO_DAYS" \
    --scale "$DEMO_SCALE" --bad-rate 0.002 --duplicate-rate 0.01 --shuffle-window 200 \
    --registry "$REGISTRY" --seed "$(date +%s)" "${LIVE_TRUTH[@]}" </dev/null &
  PIDS=("$!" "${PIDS[@]}")  # signalled first: no new events for services that are stopping
fi
wait "${PIDS[@]}"
