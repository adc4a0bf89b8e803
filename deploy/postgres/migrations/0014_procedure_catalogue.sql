-- Procedure catalogue (danh mục thủ tục hành chính): written by the CLI (admin, `dvc procedures load`),
-- read by the services. Case events keep any procedure_code; a code missing here is shown as
-- "chưa có trong danh mục", never rejected.
CREATE TABLE procedures (
    procedure_code  text PRIMARY KEY CHECK (length(procedure_code) BETWEEN 1 AND 128),
    name            text NOT NULL,
    field           text NOT NULL,      -- lĩnh vực
    level           text NOT NULL,      -- cấp thực hiện: province | district | commune | ...
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX procedures_field_idx ON procedures (field);

CREATE TABLE procedure_catalogue_version (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    source     text NOT NULL
);

GRANT SELECT ON procedures, procedure_catalogue_version TO dvc_ingest, dvc_metrics, dvc_alerts, dvc_reader;

CREATE VIEW reporting.procedures AS SELECT procedure_code, name, field, level FROM public.procedures;
GRANT SELECT ON reporting.procedures TO dvc_reader;
