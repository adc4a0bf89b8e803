"""Prometheus alerting rules for the platform itself (not the units' KPIs: the alerts service owns those)."""

from typing import Any

from boards.rules import ACTIVITY, LOCAL_OFFSET_SECONDS
from shared.config import AlertsSettings
from shared.events import HANDLER_ERROR
from shared.topics import INGEST_MAX_RECORDS

SERVICES = ("ingest", "metrics", "alerts")
# alerts_* metrics: services/alerts (tasks.py, delivery.py)
SNAPSHOT_STALE_SECONDS = 120  # the exporter refreshes every 5 s
SWEEP_STALE_SECONDS = 120  # the deadline sweeper runs every 15 s
# ingest commit -> KPI cells commit, 95th percentile; below the histogram's top finite bucket (30 s), or
# histogram_quantile could never exceed it
LAG_SECONDS = 10
FULL_BATCH = INGEST_MAX_RECORDS // 2
CONSUMER_LAG_SECONDS = (
    300  # the oldest unconsumed record of a group waited this long (dvc_consumer_lag_seconds)
)
DEAD_LETTER_SHARE = 0.01
DEAD_LETTER_MIN = 10
ALERTS_TICK_STALE_SECONDS = 3 * int(AlertsSettings.model_fields["ALERTS_EVALUATION_SECONDS"].default)
NOTIFICATION_RETRY_SECONDS = 900  # a notification still retried 15 min after its first attempt
HORIZON_HOURS = float(AlertsSettings.model_fields["ALERTS_RETRY_HORIZON_SECONDS"].default) / 3600
SILENT_HOURS = 3
ACTIVE_HOURS_PER_WEEK = 15  # hours with new counts in the last 7 days: a unit that usually reports
OFFICE_FROM, OFFICE_TO = 11, 17  # evaluated 11:00-17:00 local, so the 3 h window is office time
ACTIVITY_CHANGES = "unit:dvc_activity_changes:1h"
OPERATIONS = "/d/dvc-operations"
LOCAL = f"vector(time() + {LOCAL_OFFSET_SECONDS})"


def alert(
    name: str, expr: str, *, wait: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    """Return one alerting rule; summaries are Vietnamese first, then English."""
    return {
        "alert": name,
        "expr": expr.strip() + "\n",
        "for": wait,
        "labels": {"severity": severity, "component": "platform"},
        "annotations": {"summary": summary, "description": description, "dashboard": OPERATIONS},
    }


def platform_alerts() -> list[dict[str, Any]]:
    """A service down, stale data, consumer lag, dead letters."""
    dead = "sum(increase(ingest_dead_letters_total[15m]))"
    seen = (
        "(sum(increase(ingest_events_stored_total[15m])) + sum(increase(ingest_duplicate_events_total[15m]))"
        f" + {dead})"
    )
    return [
        alert(
            "DvcServiceDown",
            f'up{{job=~"{"|".join(SERVICES)}"}} == 0',
            wait="2m",
            severity="critical",
            summary="Dịch vụ {{ $labels.job }} ngừng hoạt động / service {{ $labels.job }} is down",
            description="Prometheus không đọc được /metrics của {{ $labels.instance }} trong 2 phút. "
            "Prometheus cannot scrape {{ $labels.instance }} for 2 minutes.",
        ),
        alert(
            "DvcKpiSnapshotStale",
            f"time() - dvc_kpi_snapshot_timestamp_seconds > {SNAPSHOT_STALE_SECONDS}",
            wait="1m",
            severity="critical",
            summary="Số liệu chỉ số không được cập nhật / KPI snapshot is stale",
            description=f"Số liệu chỉ số của {{{{ $labels.instance }}}} cũ hơn {SNAPSHOT_STALE_SECONDS} giây: bảng theo dõi "
            f"đang hiển thị số cũ. The KPI snapshot is older than {SNAPSHOT_STALE_SECONDS} s.",
        ),
        alert(
            "DvcDeadlineSweepStale",
            f"time() - metrics_last_sweep_timestamp_seconds > {SWEEP_STALE_SECONDS}",
            wait="1m",
            severity="critical",
            summary="Không còn quét hạn giải quyết / the deadline sweeper stopped",
            description="Hồ sơ quá hạn không phát sinh sự kiện sẽ không được tính. "
            "Cases that go overdue without an event are not counted until the sweeper runs again.",
        ),
        alert(
            "DvcKpiUpdatesLagging",
            "histogram_quantile(0.95, sum by (le) (rate(metrics_update_latency_seconds_bucket[5m])))"
            f" > {LAG_SECONDS}",
            wait="10m",
            severity="warning",
            summary="Chỉ số cập nhật chậm / KPI updates are lagging",
            description=f"5% lượt cập nhật chỉ số mất hơn {LAG_SECONDS} giây kể từ khi lưu sự kiện, suốt 10 phút: "
            f"dịch vụ metrics đang tồn đọng (consumer lag). The 95th percentile ingest-to-KPI delay is over {LAG_SECONDS} s.",
        ),
        alert(
            "DvcConsumerLagging",
            f"max by (group, topic) (dvc_consumer_lag_seconds) > {CONSUMER_LAG_SECONDS}",
            wait="10m",
            severity="warning",
            summary="Tồn đọng Kafka ({{ $labels.group }}) / consumer lag on {{ $labels.topic }}",
            description=f"Bản ghi cũ nhất chưa được {{{{ $labels.group }}}} xử lý trên {{{{ $labels.topic }}}} đã chờ hơn "
            f"{CONSUMER_LAG_SECONDS} giây, suốt 10 phút: số liệu và thông báo đang chậm (thông báo bị giữ khi dữ liệu "
            f"chưa đủ). The oldest unconsumed record has waited over {CONSUMER_LAG_SECONDS} s for 10 minutes.",
        ),
        alert(
            "DvcRecordsLost",
            "sum by (group, topic) (increase(dvc_consumer_records_lost_total[15m])) > 0",
            wait="0m",
            severity="critical",
            summary="Kafka đã xoá bản ghi chưa xử lý ({{ $labels.group }}) / records deleted unread on {{ $labels.topic }}",
            description="Kafka đã xoá (hết hạn lưu giữ) bản ghi trên {{ $labels.topic }} trước khi {{ $labels.group }} "
            "xử lý: các sự kiện này không được tính. Gửi lại chúng từ hệ thống nguồn và tăng retention.bytes. Kafka "
            "deleted records before the group consumed them: they are not counted; have the source send them again.",
        ),
        alert(
            "DvcDeadLettersHigh",
            f"sum by (reason) (increase(ingest_dead_letters_total[15m])) >= {DEAD_LETTER_MIN}\n"
            f"and on () ({dead} / {seen} > {DEAD_LETTER_SHARE})",
            wait="5m",
            severity="warning",
            summary="Nhiều sự kiện bị loại ({{ $labels.reason }}) / many dead letters",
            description="Hơn 1% sự kiện 15 phút qua bị chuyển vào dvc.dead-letters.v1, lý do {{ $labels.reason }}: "
            "kiểm tra hệ thống gửi. Over 1% of events were dead-lettered: check the producing system.",
        ),
        alert(
            "DvcStorageFailing",
            f'sum(increase(ingest_dead_letters_total{{reason="{HANDLER_ERROR}"}}[15m])) > 0',
            wait="0m",
            severity="critical",
            summary="Lưu sự kiện bị lỗi / events fail to be stored",
            description="Sự kiện hợp lệ bị loại vì lưu thất bại nhiều lần (handler_error): xem nhật ký ingest. "
            "Valid events were dead-lettered because storing them kept failing: read the ingest log.",
        ),
        alert(
            "DvcServiceWaiting",
            "max by (job, loop) (dvc_retry_waiting) > 0",
            wait="2m",
            severity="critical",
            summary="Dịch vụ {{ $labels.job }} đang chờ ({{ $labels.loop }}) / {{ $labels.job }} is retrying",
            description="Vòng {{ $labels.loop }} của {{ $labels.job }} thất bại liên tục (cơ sở dữ liệu hoặc Kafka: "
            "xem dvc_retry_failures_total theo kind); không mất dữ liệu, chưa ghi nhận offset. "
            "A loop keeps failing and backs off (database or broker: see dvc_retry_failures_total by kind); "
            "nothing is committed or lost meanwhile.",
        ),
        alert(
            "DvcInternalDeadLetters",
            "sum by (job, topic, reason) (increase(dvc_internal_dead_letters_total[15m])) > 0",
            wait="0m",
            severity="warning",
            summary="Thông điệp nội bộ bị cách ly ({{ $labels.topic }}) / internal messages isolated",
            description="Thông điệp trên {{ $labels.topic }} không hợp lệ hoặc xử lý lỗi ({{ $labels.reason }}) "
            "đã chuyển vào dvc.internal-dead-letters.v1: xem nhật ký {{ $labels.job }}. An internal message was "
            "isolated on dvc.internal-dead-letters.v1: read the service's log.",
        ),
        alert(
            "DvcAlertsTimerStale",
            f"time() - alerts_last_tick_timestamp_seconds > {ALERTS_TICK_STALE_SECONDS}",
            wait="2m",
            severity="critical",
            summary="Dịch vụ cảnh báo ngừng đánh giá / the alerts service stopped evaluating",
            description=f"Không có lượt đánh giá định kỳ nào trong {ALERTS_TICK_STALE_SECONDS} giây: dự báo, leo thang "
            f"và bản tin ngày không chạy. No timer tick for {ALERTS_TICK_STALE_SECONDS} s: forecasts, escalations "
            "and digests are not running.",
        ),
        alert(
            "DvcNotificationsFailing",
            f"max by (channel) (alerts_notifications_oldest_retry_seconds) > {NOTIFICATION_RETRY_SECONDS}",
            wait="0m",
            severity="warning",
            summary="Đang gửi lại thông báo qua {{ $labels.channel }} / notifications are being retried",
            description=f"Có thông báo cảnh báo gửi không được từ hơn {NOTIFICATION_RETRY_SECONDS // 60} phút và đang được "
            "gửi lại: kiểm tra máy chủ thư, webhook hoặc token Grafana. Quá hạn gửi lại thì thông báo bị bỏ (failed). "
            f"A notification has failed for over {NOTIFICATION_RETRY_SECONDS // 60} minutes and is being retried.",
        ),
        alert(
            "DvcNotificationsFailed",
            "sum by (channel) (alerts_notifications_failed) > 0",
            wait="0m",
            severity="critical",
            summary="Thông báo không gửi được, đã bỏ qua {{ $labels.channel }} / notifications failed for good",
            description=f"Có thông báo đã gửi lại suốt {HORIZON_HOURS:g} giờ mà không được và bị bỏ (failed) trong "
            "24 giờ qua: người nhận chưa biết cảnh báo. Xem GET /api/v1/notifications?status=failed. "
            f"Notifications were retried for {HORIZON_HOURS:g} h and given up in the last 24 h.",
        ),
    ]


def unit_silence_rules() -> list[dict[str, Any]]:
    """A unit that usually reports has had no new counts for 3 office hours (Mon-Fri, 11:00-17:00)."""
    silent = alert(
        "DvcUnitSilent",
        f"changes({ACTIVITY}[{SILENT_HOURS}h]) == 0\n"
        f"and on (unit_id) ({ACTIVITY} offset {SILENT_HOURS}h)\n"
        f"and on (unit_id) sum_over_time(({ACTIVITY_CHANGES} > bool 0)[7d:1h]) >= {ACTIVE_HOURS_PER_WEEK}\n"
        f"and on () hour({LOCAL}) >= {OFFICE_FROM} and on () hour({LOCAL}) < {OFFICE_TO}\n"
        f"and on () day_of_week({LOCAL}) >= 1 and on () day_of_week({LOCAL}) <= 5",
        wait="15m",
        severity="warning",
        summary="Đơn vị {{ $labels.unit_id }} không có số liệu mới / unit {{ $labels.unit_id }} went silent",
        description=f"Đơn vị thường xuyên gửi dữ liệu nhưng {SILENT_HOURS} giờ làm việc qua không có sự kiện "
        "nào làm thay đổi số liệu (ngày lễ: tạm tắt cảnh báo). A unit that usually reports has sent nothing "
        f"that changed its counts for {SILENT_HOURS} office hours (silence it on holidays).",
    )
    silent["annotations"]["dashboard"] = "/d/dvc-unit?var-unit={{ $labels.unit_id }}"
    return [{"record": ACTIVITY_CHANGES, "expr": f"changes({ACTIVITY}[1h])\n"}, silent]


def platform_rules() -> dict[str, Any]:
    """Return the platform rule file."""
    return {
        "groups": [
            {"name": "dvc-platform", "rules": platform_alerts()},
            {"name": "dvc-unit-silence", "interval": "1m", "rules": unit_silence_rules()},
        ]
    }
