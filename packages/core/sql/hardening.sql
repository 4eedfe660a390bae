-- Annal: the roles of a hardened events table (see docs/hardening.md).
--
-- Run once after `annal migrate`, and again after each upgrade that adds objects, as the owner of the objects:
--   psql -v ON_ERROR_STOP=1 -v schema=audit -v table=events -v app_role=annal_app -v signer_role=annal_signer \
--     -v auditor_role=annal_auditor -f hardening.sql
-- The roles themselves are created by whoever administers the cluster (CREATE ROLE ... LOGIN), none of them
-- SUPERUSER, BYPASSRLS or a member of the owner (or of each other). Running it again changes nothing.
--
-- Three roles beside the owner, who alone can alter or delete anything:
-- - the application appends events and reads; it cannot write the digest tables, and is never given the key;
-- - the digest signer holds the signing key (configured in its own process only) and inserts digests, not events;
-- - the auditor reads and verifies.
--
-- The application appends and reads. It writes no column the database keeps for itself: the global position, the
-- transaction id and recorded_at are filled in by the database (their defaults), and the commit order is taken by the
-- owner's triggers at commit; a role that can name only the other columns cannot choose where an event falls in the
-- log, whatever SQL it writes.

SELECT set_config('annal.hardening.schema', :'schema', false),
  set_config('annal.hardening.table', :'table', false),
  set_config('annal.hardening.app_role', :'app_role', false),
  set_config('annal.hardening.signer_role', :'signer_role', false),
  set_config('annal.hardening.auditor_role', :'auditor_role', false);

DO $hardening$
DECLARE
  s text := current_setting('annal.hardening.schema');
  t text := current_setting('annal.hardening.table');
  app text := current_setting('annal.hardening.app_role');
  signer text := current_setting('annal.hardening.signer_role');
  auditor text := current_setting('annal.hardening.auditor_role');
BEGIN
  -- Nobody gets anything by default: not on the schema, its tables, sequences or functions.
  EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', s);
  EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC', s);
  EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM PUBLIC', s);
  EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC', s);

  -- The application appends events, naming only the columns it may choose, and reads them in commit order.
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, app);
  EXECUTE format('GRANT SELECT ON %I.%I, %I.%I TO %I', s, t, s, t || '_commits', app);
  EXECUTE format('GRANT INSERT (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, '
    'metadata, stream_version, correlation_id, causation_id, hash) ON %I.%I TO %I', s, t, app);
  EXECUTE format('GRANT SELECT ON SEQUENCE %I.%I TO %I', s, t || '_commit_sequence', app);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.%I(bytea, boolean) TO %I', s, t || '_chain', app);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.%I(bytea, bytea, boolean) TO %I', s, t || '_chain_step', app);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.%I(bigint, boolean) TO %I', s, t || '_fence', app);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.%I(xid8, bigint) TO %I', s, t || '_legacy_checkpoint', app);
  -- It reads the digests (an entity's verification checks its head against the latest), and writes none: a role
  -- that could insert a digest row could plant one for the signer to build on. Earlier versions of this file granted
  -- it INSERT; that grant is taken back.
  EXECUTE format('GRANT SELECT ON %I.%I, %I.%I TO %I', s, t || '_digests', s, t || '_digest_heads', app);
  EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %I.%I, %I.%I FROM %I', s, t || '_digests', s,
    t || '_digest_heads', app);
  -- The feed's consumers: their checkpoints and leases are progress, not records.
  EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I.%I TO %I', s, t || '_consumers', app);

  -- The digest signer reads the log and the digests, and inserts digests and their heads; it appends no event.
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, signer);
  EXECUTE format('GRANT SELECT ON %I.%I, %I.%I TO %I', s, t, s, t || '_commits', signer);
  EXECUTE format('GRANT SELECT, INSERT ON %I.%I, %I.%I TO %I', s, t || '_digests', s, t || '_digest_heads', signer);
  EXECUTE format('GRANT SELECT ON SEQUENCE %I.%I TO %I', s, t || '_commit_sequence', signer);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.%I(bigint, boolean) TO %I', s, t || '_fence', signer);

  -- The auditor reads, and verifies.
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, auditor);
  EXECUTE format('GRANT SELECT ON %I.%I, %I.%I, %I.%I, %I.%I TO %I', s, t, s, t || '_commits', s, t || '_digests', s,
    t || '_digest_heads', auditor);
  EXECUTE format('GRANT SELECT ON SEQUENCE %I.%I TO %I', s, t || '_commit_sequence', auditor);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.%I(bigint, boolean) TO %I', s, t || '_fence', auditor);
END
$hardening$;
