-- The web pages (served by metrics) show each unit's alert states (failures still allowed, forecast)
-- and alert history. metrics reads them through the `reporting` views (no recipients, no
-- who-acknowledged); it never writes them: acknowledging stays with the alerts service.
GRANT USAGE ON SCHEMA reporting TO dvc_metrics;
GRANT SELECT ON reporting.alert_states, reporting.alerts TO dvc_metrics;
