DROP FUNCTION IF EXISTS confab_group_moved(bigint, bigint);
