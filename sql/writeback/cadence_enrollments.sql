-- writeback.cadence_enrollments: who should be added to which cadence.
-- An example model: copy it, point it at your own tables, run it before
-- writeback/cadence_enrollments. Plain SQL for DuckDB and Postgres.
--
-- Columns (docs/writeback.md): the person by person_email (case-insensitive) or
-- person_id; the cadence by cadence_id or cadence_name (exactly one live cadence
-- must have the name); optionally the user by user_id or user_email.
-- A person is added to a cadence once: someone who was on it already is left alone.
DELETE FROM writeback.cadence_enrollments;

INSERT INTO writeback.cadence_enrollments (person_email, cadence_name, user_email)
SELECT
    lower(trim(contact.email)) AS person_email,
    CASE contact.lifecycle_stage
        WHEN 'mql' THEN 'Inbound Lead Follow-up'
        ELSE 'Outbound Prospecting'
    END                        AS cadence_name,
    contact.owner_email        AS user_email
FROM crm.contacts AS contact
WHERE contact.email IS NOT NULL
  AND contact.lifecycle_stage IN ('mql', 'sql')
  AND contact.created_at >= now() - INTERVAL '7 days';
