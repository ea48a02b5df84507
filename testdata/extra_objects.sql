-- Objects vulcan_db.sql does not create but a dump and restore must carry:
-- a trigger with its function, comments, a standalone sequence moved forward,
-- and a materialized view. Loaded by the integration tests after vulcan_db.sql.
SET client_min_messages = warning;
BEGIN;
CREATE OR REPLACE FUNCTION trades_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.meta := NEW.meta || jsonb_build_object('audited', true);
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS trades_audit ON trades;
CREATE TRIGGER trades_audit BEFORE INSERT ON trades FOR EACH ROW EXECUTE FUNCTION trades_audit();
COMMENT ON TABLE trades IS 'Trading journal: one row per execution ✓';
COMMENT ON COLUMN trades.notes IS 'free text, may hold ''quotes'' and ünïcødé';
DROP SEQUENCE IF EXISTS report_numbers;
CREATE SEQUENCE report_numbers START 1000;
SELECT setval('report_numbers', 4242);
DROP MATERIALIZED VIEW IF EXISTS part_stats;
CREATE MATERIALIZED VIEW part_stats AS SELECT part_name, count(*) AS n FROM validations GROUP BY part_name;
COMMIT;
