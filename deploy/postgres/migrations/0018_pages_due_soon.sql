-- The unit pages (served by metrics) show the unit's "Sắp đến hạn" list as the alerts digest computes
-- it: working days follow the Vietnamese holidays plus the government's swaps in holiday_overrides,
-- which metrics reads (never writes: they stay with `dvc alerts holidays override`).
GRANT SELECT ON holiday_overrides TO dvc_metrics;
