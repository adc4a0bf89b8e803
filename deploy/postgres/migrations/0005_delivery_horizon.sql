-- Notifications are retried with capped, jittered backoff until a horizon after their first attempt
-- (DVC_ALERTS_RETRY_HORIZON_SECONDS, default 72 h), then given up as `failed` (issue 10, item 7).
-- first_attempt_at starts the horizon; failed_at says when a notification was given up (the
-- alerts_notifications_failed gauge and the DvcNotificationsFailed rule look at the last 24 h);
-- claimed_at marks a row being sent, so that hastening retries after a recovery never re-sends it.
ALTER TABLE notifications
    ADD COLUMN first_attempt_at timestamptz,
    ADD COLUMN failed_at timestamptz,
    ADD COLUMN claimed_at timestamptz;

UPDATE notifications SET first_attempt_at = created_at WHERE attempts > 0;
UPDATE notifications SET failed_at = next_attempt_at WHERE status = 'failed';

CREATE INDEX notifications_failed_idx ON notifications (failed_at) WHERE status = 'failed';

GRANT SELECT (first_attempt_at, failed_at) ON notifications TO dvc_reader;
