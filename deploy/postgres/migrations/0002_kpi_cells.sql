-- KPI counts kept by metrics: additive counts per (unit, local day, KPI), plus the per-day rows
-- behind the two distinct-count KPIs (online_offer_rate, apology_coverage).
CREATE TABLE kpi_day_cells (
    unit_id      text NOT NULL,
    day          date NOT NULL,            -- local day, Asia/Ho_Chi_Minh
    kpi          text NOT NULL,
    numerator    bigint NOT NULL CHECK (numerator >= 0),
    denominator  bigint NOT NULL CHECK (denominator >= numerator),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, day, kpi)  -- a dirty (unit, day) and a unit's day range are prefixes
);
CREATE INDEX kpi_day_cells_day_idx ON kpi_day_cells (day, kpi);

-- Distinct procedure codes received per unit and local day; `online` = some case at level 3 or 4.
CREATE TABLE procedure_days (
    unit_id         text NOT NULL,
    day             date NOT NULL,
    procedure_code  text NOT NULL,
    online          boolean NOT NULL,
    PRIMARY KEY (unit_id, day, procedure_code)
);

-- Cases that became overdue on a local day; `apologized` = an apology at any time.
CREATE TABLE overdue_days (
    unit_id     text NOT NULL,
    day         date NOT NULL,
    case_id     text NOT NULL,
    apologized  boolean NOT NULL,
    PRIMARY KEY (unit_id, day, case_id)
);

-- Period rollups over every unit (the Prometheus snapshot, the units list) filter by day first.
CREATE INDEX procedure_days_day_idx ON procedure_days (day);
CREATE INDEX overdue_days_day_idx ON overdue_days (day);

-- The deadline sweeper's watermark: deadlines up to here have been marked dirty.
CREATE TABLE sweeper_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    swept_until timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON kpi_day_cells, procedure_days, overdue_days, sweeper_state TO dvc_metrics;
GRANT SELECT ON kpi_day_cells, procedure_days, overdue_days TO dvc_alerts, dvc_reader;
