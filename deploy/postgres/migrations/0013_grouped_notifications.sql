-- Notifications grouped per recipient (issue 11, item 4), like Alertmanager groups per receiver.
-- An alert notice by e-mail (firing, resolved, escalation) is queued `held`: the grouper waits
-- DVC_ALERTS_GROUP_WAIT_SECONDS after the first held notice of a recipient address, and at least
-- DVC_ALERTS_GROUP_INTERVAL_SECONDS after the previous release to it, then coalesces each unit x KPI x
-- period to its net change (pairs that cancel are cancelled) and releases one message: the notice
-- itself when one is left, else a new `group` notification whose members keep `group_id` and take
-- its delivery status. `released_at` says when a message to the recipient was released (the timer
-- of the next one); every step is one transaction, so a restart loses nothing and sends nothing twice.
ALTER TABLE notifications
    ADD COLUMN held boolean NOT NULL DEFAULT false,
    ADD COLUMN group_id bigint REFERENCES notifications (notification_id),
    ADD COLUMN released_at timestamptz;

ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('firing', 'resolved', 'escalation', 'digest', 'group'));

CREATE INDEX notifications_held_idx ON notifications (recipient, notification_id)
    WHERE held AND status = 'pending' AND group_id IS NULL;
CREATE INDEX notifications_released_idx ON notifications (recipient, released_at) WHERE released_at IS NOT NULL;
CREATE INDEX notifications_group_idx ON notifications (group_id) WHERE group_id IS NOT NULL;

-- The "sắp đến hạn" section of digests (item 6) gives each case the median processing days of its
-- unit x procedure over the last 90 days, read from `cases` (alerts may already SELECT it, 0004).
CREATE INDEX cases_resolved_procedure_idx ON cases (unit_id, procedure_code, closed_at)
    WHERE close_type = 'resolved';

GRANT SELECT (held, group_id, released_at) ON notifications TO dvc_reader;
