ALTER TABLE threads DROP COLUMN members_version;
