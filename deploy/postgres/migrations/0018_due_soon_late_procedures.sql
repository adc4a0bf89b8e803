-- The unit pages (served by metrics) show the unit's "Sắp đến hạn" list as the alerts digest computes
-- it: working days follow the Vietnamese holidays plus the government's swaps in holiday_overrides,
-- which metrics reads (never writes: they stay with `dvc alerts holidays override`).
GRANT SELECT ON holiday_overrides TO dvc_metrics;

-- The unit board's "Thủ tục gây trễ hạn" panel counts files resolved late per procedure, with the
-- definition of on_time_rate (resolved, timed, not early or on time): the case view gains how a case
-- was closed and its timeliness (appended columns; nothing personal).
CREATE OR REPLACE VIEW reporting.cases AS
    SELECT case_id, unit_id, procedure_code, received_at, deadline, paused_since, closed_at, apology_at,
           close_type, timeliness
    FROM public.cases;
