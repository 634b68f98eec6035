-- Issue 17: an approval says what is being approved and who asked (approval_requested
-- v2), needs a quorum of distinct approvers above a risk level, and can be withdrawn by
-- its run (it failed or was cancelled first).
ALTER TABLE approvals
    ADD COLUMN goal               text    NOT NULL DEFAULT '',
    ADD COLUMN requested_by       text    NOT NULL DEFAULT '',
    ADD COLUMN arguments_json     text    NOT NULL DEFAULT '{}',
    ADD COLUMN inputs_json        text    NOT NULL DEFAULT '{}',
    ADD COLUMN compensation       text    NOT NULL DEFAULT '',
    ADD COLUMN required_approvals integer NOT NULL DEFAULT 1,
    ADD COLUMN approvers          jsonb   NOT NULL DEFAULT '[]';
ALTER TABLE approvals DROP CONSTRAINT approvals_status_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_status_check
    CHECK (status IN ('pending', 'granted', 'denied', 'expired', 'withdrawn'));
