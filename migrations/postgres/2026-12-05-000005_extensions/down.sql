ALTER TABLE messages DROP COLUMN sentiment;
