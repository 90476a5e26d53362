-- bench/seed_second_key.sql: `make bench` [g]. A second key for each of the 100,000 accounts
-- of bench/seed.sql (a sandbox key, not primary, ids 100001..200000), key_count to match.
-- The same @WORD@ spellings as seed.sql.
INSERT INTO api_keys (id, account_id, name, key_type, key_prefix, digest, is_active, is_primary, created_at)
SELECT 100000 + value, value, 'Development Key', 'sandbox', 'ml_sand_' || substr(@HEX('s' || value)@, 1, 4),
       @DIGEST('s' || value)@, @TRUE@, @FALSE@, @T0@ + 250 * value + 60
FROM generate_series(CAST(1 AS BIGINT), 100000) AS value;
UPDATE accounts SET key_count = key_count + 1;
