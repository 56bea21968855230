-- A group of sends written as a statement of its own, outside an explicit transaction (see
-- store::appends::pg): when fewer thread rows moved than the group holds, the statement must
-- fail so that its implicit transaction rolls back whole. `expected` < 0: no check (the group
-- runs inside a transaction, whose writer rolls back itself).
CREATE OR REPLACE FUNCTION confab_group_moved(moved bigint, expected bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF expected >= 0 AND moved <> expected THEN
        RAISE EXCEPTION 'confab: a thread moved (% of % rows)', moved, expected
            USING ERRCODE = 'CF001';
    END IF;
    RETURN moved;
END
$$;
