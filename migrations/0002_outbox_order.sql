-- The relay takes rows that never failed first, so rows a broker keeps
-- returning (an unroutable queue) cannot block newer ones.
CREATE INDEX outbox_attempts_id ON outbox (attempts, id);
