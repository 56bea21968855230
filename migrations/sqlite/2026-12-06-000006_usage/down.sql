DROP TRIGGER usage_identities;
DROP TRIGGER usage_threads;
DROP TRIGGER usage_messages;
DROP TABLE usage_hours;
