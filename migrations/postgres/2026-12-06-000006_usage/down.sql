DROP TRIGGER usage_identities ON identities;
DROP TRIGGER usage_threads ON threads;
DROP TRIGGER usage_messages ON messages;
DROP FUNCTION usage_count_identities();
DROP FUNCTION usage_count_threads();
DROP FUNCTION usage_count_messages();
DROP TABLE usage_hours;
