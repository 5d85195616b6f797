-- Every Slipway process runs a relay and wakes it in-process after a commit
-- that wrote outbox rows (its connections are named `slipway`); a NOTIFY
-- from them would only add a cluster-wide lock to every such commit. Writers
-- without a relay of their own (psql, scripts, other tools) still NOTIFY the
-- relays; every relay also rescans on a timer and after reconnecting.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name', true) IS DISTINCT FROM 'slipway' THEN
        PERFORM pg_notify('slipway_outbox', '');
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
