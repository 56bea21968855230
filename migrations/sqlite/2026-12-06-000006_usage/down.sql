DROP TRIGGER usage_identities;
DROP TRIGGER usage_threads;
DROP TABLE usage_hours;
