-- The completeness watermark (architecture.md principle 9): per input partition (case and document
-- events), the offset up to which ingest has stored the stream, and the instant up to which the data
-- is complete. One writer: ingest, in the transaction of each batch and from its lag monitor.
-- metrics and alerts read it (shared/watermark.py); the reader sees it through reporting.watermarks.
CREATE TABLE input_watermarks (
    topic text NOT NULL,  -- with the deployment's topic prefix
    partition integer NOT NULL,
    next_offset bigint NOT NULL,  -- the next offset to store: every record before it is stored
    complete_until timestamptz NOT NULL,  -- the data of this partition is complete up to this instant
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
GRANT SELECT, INSERT, UPDATE ON input_watermarks TO dvc_ingest;
GRANT SELECT ON input_watermarks TO dvc_metrics, dvc_alerts;

CREATE VIEW reporting.watermarks AS
SELECT topic, partition, next_offset, complete_until, updated_at FROM input_watermarks;
GRANT SELECT ON reporting.watermarks TO dvc_reader;
