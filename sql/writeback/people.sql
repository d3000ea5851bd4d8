-- writeback.people: what SalesLoft's people should look like, one row per email address.
-- An example model: copy it, point it at your CRM table, and run it before writeback/people
-- (as a Dagster asset of your own, dbt, or any scheduler). Plain SQL for DuckDB and Postgres.
--
-- Columns (docs/writeback.md): email_address is the key (matched case-insensitively);
-- every other column is a field to set, and NULL means "leave this field alone".
-- tags is a JSON array (the whole tag list); custom_fields a JSON object (these keys are
-- set, other custom fields are kept); owner_id, account_id, person_stage_id are SalesLoft ids.
-- Rows with the same email must agree, or they are reported as unresolved.
DELETE FROM writeback.people;

INSERT INTO writeback.people (
    email_address, first_name, last_name, title, phone, city, state, country,
    tags, custom_fields, owner_id, account_id, do_not_contact
)
SELECT
    lower(trim(contact.email))                      AS email_address,
    contact.first_name,
    contact.last_name,
    contact.job_title                               AS title,
    contact.phone,
    contact.city,
    contact.region                                  AS state,
    contact.country,
    NULL                                            AS tags,           -- e.g. CAST('["customer"]' AS JSON)
    -- to_json quotes and escapes the value (a " or \ in it cannot break or add fields); the same on
    -- DuckDB and Postgres, whose JSON object builders differ. A NULL crm_id leaves custom_fields NULL.
    CAST('{"CRM Id": ' || CAST(to_json(contact.crm_id) AS TEXT) || '}' AS JSON) AS custom_fields,
    owner.id                                        AS owner_id,       -- the SalesLoft user, by email
    account.id                                      AS account_id,     -- the SalesLoft account, by domain
    contact.unsubscribed                            AS do_not_contact
FROM crm.contacts AS contact
LEFT JOIN staging.users AS owner
    ON lower(owner.record ->> 'email') = lower(contact.owner_email)
LEFT JOIN staging.accounts AS account
    ON lower(account.record ->> 'domain') = lower(contact.company_domain)
WHERE contact.email IS NOT NULL
  AND contact.lifecycle_stage IN ('lead', 'mql', 'sql');
