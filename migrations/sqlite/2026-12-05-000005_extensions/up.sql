-- CONTRACT §10.2: a text/html message's sentiment, thousandths of VADER's compound score
-- (-1000…1000); NULL on system messages and where sentiment was off.
ALTER TABLE messages ADD COLUMN sentiment BIGINT;
