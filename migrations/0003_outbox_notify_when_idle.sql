-- A NOTIFY takes a cluster-wide lock at commit, which serialised every
-- enqueueing transaction. Relays in the writing process are woken in-process;
-- other processes' relays need a notification only when this insert found
-- no older row waiting (a relay with older rows to publish is awake anyway,
-- and every relay also rescans on a timer).
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id < (SELECT min(id) FROM inserted)) THEN
        PERFORM pg_notify('slipway_outbox', '');
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
