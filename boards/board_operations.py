"""Vận hành: platform health for the operators (throughput, lag, dead letters, freshness, notifications)."""

from boards import alert_rules as a
from boards import sql
from boards.panels import (
    Json,
    Panel,
    bar_gauge,
    dashboard,
    override,
    pg,
    prom,
    stat,
    table,
    time_series,
    value_mappings,
)
from shared import topics
from shared.events import ALERT_STATES, HANDLER_ERROR, REASON_CODES
from shared.notifications import CHANNELS

RATE = "$__rate_interval"
# Vietnamese names of the dead-letter reasons (a fixed vocabulary of shared.events, plus ingest's own).
REASON_NAMES = {
    "not_json": "Không phải JSON",
    "not_object": "Không phải đối tượng JSON",
    "unknown_event_type": "Loại sự kiện không có trong hợp đồng",
    "missing_field": "Thiếu trường bắt buộc",
    "null_field": "Trường bắt buộc để trống",
    "wrong_type": "Sai kiểu dữ liệu",
    "bad_timestamp": "Thời điểm không hợp lệ",
    "naive_timestamp": "Thời điểm thiếu múi giờ",
    "bad_enum": "Giá trị không được phép",
    "bad_length": "Độ dài không hợp lệ",
    "unknown_unit": "Đơn vị không có trong danh mục",
    HANDLER_ERROR: "Lưu thất bại nhiều lần (lỗi hệ thống)",
}
STATE_NAMES = {
    "ok": "Đạt",
    "at_risk": "Có nguy cơ không đạt",
    "below_target": "Chưa đạt (đã cảnh báo)",
    "insufficient_data": "Chưa đủ số liệu",
}
CHANNEL_NAMES = {"email": "Thư điện tử", "webhook": "Webhook", "grafana": "Ghi chú Grafana"}
RESULT_NAMES = {"sent": "đã gửi", "retry": "gửi lại", "failed": "thất bại"}
TOPIC_NAMES = {
    topics.CASE_EVENTS: "Hồ sơ TTHC",
    topics.DOCUMENT_EVENTS: "Văn bản",
    topics.REPORT_EVENTS: "Báo cáo định kỳ",
    topics.INSPECTION_EVENTS: "Kiểm tra",
}
FRESHNESS_STEPS = {
    "mode": "absolute",
    "steps": [
        {"color": "green", "value": None},
        {"color": "yellow", "value": 60},
        {"color": "red", "value": a.SNAPSHOT_STALE_SECONDS},
    ],
}
ZERO_IS_GOOD = {
    "mode": "absolute",
    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
}


def service_panels() -> list[Panel]:
    """Is each service up, and how old are the KPI snapshot and the last deadline sweep."""
    services = "|".join(a.SERVICES)
    up = stat(
        "Trạng thái dịch vụ",
        "Prometheus đọc được /metrics của dịch vụ hay không. / Whether Prometheus can scrape each service.",
        prom(f'min by (job) (up{{job=~"{services}"}})', legend="{{job}}"),
        width=12,
        height=4,
        thresholds={
            "mode": "absolute",
            "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
        },
        mappings=value_mappings({"1": ("Hoạt động", "green"), "0": ("Ngừng", "red")}),
    )
    up.options["textMode"] = "value_and_name"
    snapshot = stat(
        "Độ cũ của số liệu chỉ số",
        f"Thời gian từ lần đọc số liệu gần nhất của dịch vụ metrics; quá {a.SNAPSHOT_STALE_SECONDS} giây là có sự cố. "
        "/ Age of the KPI snapshot the boards show.",
        prom("time() - max(dvc_kpi_snapshot_timestamp_seconds)"),
        width=6,
        height=4,
        unit="s",
        decimals=0,
        thresholds=FRESHNESS_STEPS,
    )
    sweep = stat(
        "Lần quét hạn giải quyết gần nhất",
        "Hồ sơ quá hạn mà không có sự kiện chỉ được tính khi bộ quét chạy (15 giây một lần). "
        "/ Age of the last deadline sweep.",
        prom("time() - max(metrics_last_sweep_timestamp_seconds)"),
        width=6,
        height=4,
        unit="s",
        decimals=0,
        thresholds=FRESHNESS_STEPS,
    )
    return [up, snapshot, sweep]


def flow_panels() -> list[Panel]:
    """Events stored and duplicates per topic; ingest-to-KPI latency."""
    stored = time_series(
        "Sự kiện được lưu mỗi giây",
        "Sự kiện mới được lưu và sự kiện trùng (đã lưu trước đó) theo topic. / Events stored and duplicates per second.",
        [
            prom(f'sum(rate({metric}{{topic="{topic}"}}[{RATE}]))', legend=f"{name}: {what}", instant=False)
            for topic, name in TOPIC_NAMES.items()
            for metric, what in (
                ("ingest_events_stored_total", "lưu mới"),
                ("ingest_duplicate_events_total", "trùng"),
            )
        ],
        width=12,
        unit="ops",
    )
    latency = time_series(
        "Độ trễ từ lúc lưu sự kiện đến lúc chỉ số cập nhật",
        f"Phân vị 50% và 95%. Quá {a.LAG_SECONDS} giây trong 10 phút thì có cảnh báo. "
        "/ Ingest commit to KPI cells commit, 50th and 95th percentiles; and ingest's batch commit time.",
        [
            prom(
                f"histogram_quantile({q}, sum by (le) (rate(metrics_update_latency_seconds_bucket[{RATE}])))",
                legend=f"chỉ số p{int(q * 100)}",
                instant=False,
            )
            for q in (0.5, 0.95)
        ]
        + [
            prom(
                f"histogram_quantile(0.95, sum by (le) (rate(ingest_commit_seconds_bucket[{RATE}])))",
                legend="ingest lưu lô p95",
                instant=False,
            )
        ],
        width=12,
        unit="s",
    )
    return [stored, latency]


def backlog_panels() -> list[Panel]:
    """Consumer lag measured against the broker, the watermark's delay, and dead letters by reason."""
    backlog = time_series(
        "Tồn đọng Kafka: tuổi bản ghi cũ nhất chưa xử lý",
        "Độ trễ consumer đo từ broker, theo nhóm và topic (giây: tuổi bản ghi cũ nhất chưa xử lý; "
        f"quá {a.CONSUMER_LAG_SECONDS} giây trong 10 phút thì có cảnh báo DvcConsumerLagging), và độ trễ của mốc "
        "dữ liệu đầy đủ (thông báo bị giữ khi quá DVC_WATERMARK_HOLD_SECONDS). / Consumer lag measured against the "
        "broker (age of the oldest unconsumed record) and how far the completeness watermark is behind now.",
        [
            prom(
                "max by (group, topic) (dvc_consumer_lag_seconds)",
                legend="{{group}} {{topic}}",
                instant=False,
            ),
            prom(
                "time() - min(dvc_data_as_of_timestamp_seconds)",
                legend="dữ liệu đầy đủ chậm (as_of)",
                instant=False,
            ),
        ],
        width=12,
        unit="s",
    )
    backlog_messages = time_series(
        "Tồn đọng Kafka: số bản ghi chưa xử lý",
        "Số bản ghi chưa được nhóm consumer xử lý và xác nhận (offset cuối trừ offset đã commit). "
        "/ Records not yet consumed and committed, by group and topic.",
        [
            prom(
                "sum by (group, topic) (max by (group, topic, partition) (dvc_consumer_lag_messages))",
                legend="{{group}} {{topic}}",
                instant=False,
            ),
            prom(
                f"sum by (app_name) (rate(faststream_received_messages_total[{RATE}]))",
                legend="nhận mỗi giây ({{app_name}})",
                instant=False,
            ),
        ],
        width=12,
    )
    dead = bar_gauge(
        "Sự kiện bị loại theo lý do (trong khoảng thời gian đã chọn)",
        "Sự kiện chuyển vào dvc.dead-letters.v1. / Dead letters by reason over the chosen time range.",
        [prom("sum by (reason) (increase(ingest_dead_letters_total[$__range]))", legend="{{reason}}")],
        width=12,
        height=9,
        thresholds=ZERO_IS_GOOD,
        decimals=0,
    )
    dead.overrides = [override(reason, displayName=name) for reason, name in REASON_NAMES.items()]
    return [backlog, backlog_messages, dead]


def alerts_service_panels() -> list[Panel]:
    """What the alerts service sees and sends (its own metrics, alerts_*)."""
    states = bar_gauge(
        "Đánh giá chỉ tiêu theo trạng thái (dịch vụ cảnh báo)",
        "Số cặp (đơn vị, chỉ tiêu, kỳ) ở mỗi trạng thái theo đánh giá của dịch vụ cảnh báo. "
        "/ (unit, KPI, period) pairs per alert state.",
        [prom("sum by (state) (alerts_states)", legend="{{state}}")],
        width=8,
        height=8,
        thresholds={"mode": "absolute", "steps": [{"color": "blue", "value": None}]},
        decimals=0,
    )
    states.overrides = [override(state, displayName=name) for state, name in STATE_NAMES.items()]
    opened = stat(
        "Cảnh báo chỉ tiêu đang mở",
        "Cảnh báo của các đơn vị chưa đóng (chưa xác nhận / đã xác nhận). / Open unit alerts.",
        prom("sum by (acknowledged) (alerts_open)", legend="{{acknowledged}}"),
        width=6,
        height=8,
        thresholds={
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}],
        },
        decimals=0,
    )
    opened.options["textMode"] = "value_and_name"
    opened.overrides = [
        override("true", displayName="đã xác nhận"),
        override("false", displayName="chưa xác nhận"),
    ]
    delivery = bar_gauge(
        "Gửi thông báo theo kênh (trong khoảng thời gian đã chọn)",
        "Số lượt gửi thông báo theo kênh và kết quả. / Notification attempts by channel and result.",
        [
            prom(
                "sum by (channel, result) (increase(alerts_notifications_total[$__range]))",
                legend="{{channel}}: {{result}}",
            )
        ],
        width=10,
        height=8,
        thresholds={"mode": "absolute", "steps": [{"color": "blue", "value": None}]},
        decimals=0,
    )
    delivery.overrides = [
        override(
            f"{channel}: {result}",
            displayName=f"{CHANNEL_NAMES[channel]}: {shown}",
            **({"color": {"mode": "fixed", "fixedColor": "red"}} if result == "failed" else {}),
        )
        for channel in CHANNELS
        for result, shown in RESULT_NAMES.items()
    ]
    return [states, opened, delivery]


def alerting_panels() -> list[Panel]:
    """Platform alerts firing, units gone silent, notification delivery, units with the oldest events."""
    firing = stat(
        "Cảnh báo nền tảng đang bật",
        "Số cảnh báo của chính hệ thống (dịch vụ ngừng, số liệu cũ, tồn đọng, sự kiện bị loại) đang bật; "
        "xem chi tiết ở trang /alerts của Prometheus. / Platform alerts firing.",
        prom('count(ALERTS{alertstate="firing", component="platform"}) or on () vector(0)'),
        width=6,
        height=5,
        thresholds=ZERO_IS_GOOD,
        decimals=0,
    )
    silent = stat(
        "Đơn vị ngừng gửi dữ liệu",
        f"Đơn vị thường xuyên có số liệu mới nhưng {a.SILENT_HOURS} giờ làm việc qua không có (cảnh báo DvcUnitSilent). "
        "/ Units that usually report but went silent.",
        prom('count(ALERTS{alertname="DvcUnitSilent", alertstate="firing"}) or on () vector(0)'),
        width=6,
        height=5,
        thresholds=ZERO_IS_GOOD,
        decimals=0,
    )
    notifications = table(
        "Gửi thông báo cảnh báo",
        "Thư điện tử, webhook, ghi chú Grafana trong khoảng thời gian đã chọn; chờ lâu nhất tính bằng giây. "
        "/ Notification delivery by channel.",
        [pg(sql.NOTIFICATIONS)],
        width=12,
        height=5,
    )
    notifications.overrides = [override("Chờ lâu nhất", unit="s", decimals=0)]
    last_events = table(
        "Đơn vị lâu nhất chưa có sự kiện mới",
        "Thời điểm phát sinh của sự kiện gần nhất mỗi đơn vị đã gửi (đơn vị chưa từng gửi ở đầu). "
        "/ Latest event per unit, oldest first.",
        [pg(sql.LAST_EVENTS)],
        height=10,
    )
    return [firing, silent, notifications, last_events]


def delivery_problem_panels() -> list[Panel]:
    """Notifications waiting for a retry (a channel is down) and given up after the retry horizon."""
    retrying = stat(
        "Thông báo đang chờ gửi lại",
        "Thông báo gửi lỗi đang chờ lần gửi lại (kênh có sự cố: máy chủ thư, webhook, Grafana). "
        "/ Notifications waiting for a retry, by channel.",
        prom("sum by (channel) (alerts_notifications_retrying)", legend="{{channel}}"),
        width=8,
        height=5,
        thresholds={
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}],
        },
        decimals=0,
    )
    oldest = stat(
        "Thông báo chờ gửi lại lâu nhất",
        f"Thời gian từ lần gửi đầu của thông báo chờ lâu nhất; quá {a.NOTIFICATION_RETRY_SECONDS // 60} phút là có cảnh báo "
        "DvcNotificationsFailing. / Age of the oldest notification still being retried.",
        prom("max by (channel) (alerts_notifications_oldest_retry_seconds)", legend="{{channel}}"),
        width=8,
        height=5,
        unit="s",
        decimals=0,
        thresholds={
            "mode": "absolute",
            "steps": [
                {"color": "green", "value": None},
                {"color": "red", "value": a.NOTIFICATION_RETRY_SECONDS},
            ],
        },
    )
    failed = stat(
        "Thông báo bị bỏ (24 giờ qua)",
        f"Thông báo đã gửi lại suốt {a.HORIZON_HOURS:g} giờ mà không được (failed), cảnh báo DvcNotificationsFailed; "
        "danh sách: GET /api/v1/notifications?status=failed. / Notifications given up in the last 24 h.",
        prom("sum by (channel) (alerts_notifications_failed)", legend="{{channel}}"),
        width=8,
        height=5,
        thresholds=ZERO_IS_GOOD,
        decimals=0,
    )
    for panel in (retrying, oldest, failed):
        panel.options["textMode"] = "value_and_name"
        panel.overrides = [override(channel, displayName=name) for channel, name in CHANNEL_NAMES.items()]
    return [retrying, oldest, failed]


def operations_board() -> Json:
    """Vận hành (uid dvc-operations)."""
    return dashboard(
        "dvc-operations",
        "Vận hành",
        "Sức khoẻ của hệ thống giám sát: dịch vụ, lưu lượng sự kiện, tồn đọng, sự kiện bị loại, độ cũ số liệu, "
        "gửi thông báo. / Platform health.",
        [
            service_panels(),
            flow_panels(),
            backlog_panels(),
            alerts_service_panels(),
            delivery_problem_panels(),
            alerting_panels(),
        ],
        time_from="now-6h",
        refresh="30s",
    )


def check_reason_names() -> None:
    """Every fixed label value shown has a Vietnamese name (the vocabularies live in the services)."""
    for what, values, names in (
        ("dead-letter reasons", REASON_CODES, REASON_NAMES),
        ("alert states", ALERT_STATES, STATE_NAMES),
        ("notification channels", CHANNELS, CHANNEL_NAMES),
    ):
        missing = set(values) - set(names)
        if missing:
            raise ValueError(f"no Vietnamese name for {what} {sorted(missing)}")
