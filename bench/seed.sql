-- bench/seed.sql: `make bench` [g]. 100,000 accounts, each with its primary key, and
-- 1,000,000 audit events, written with SQL straight into a database that the current
-- apikeyd has just created and migrated (`apikeyd account create` made account 1 with a
-- real key, events 1-2; `apikeyd admin-token create` made admin token 1, event 3).
-- One text for both backends: run.sh replaces each @WORD@ with its SQLite (sqlite3 CLI,
-- which has generate_series and sha3) or PostgreSQL (psql) spelling:
--   @T0@           the time of event index 0 (epoch seconds; the last event is about now)
--   @TRUE@ @FALSE@ booleans (1 / true, 0 / false)
--   @PAD8(x)@      x as 8 zero-padded decimal digits
--   @DIGEST(x)@    a 32-byte hash of the text x: a digest no key has, so seeded keys
--                  never verify (start-up and listings do not need them to)
--   @HEX(x)@       16 hex digits hashed from the text x
--   MATERIALIZED MATERIALIZED (both dialects; a hint that the CTE is computed once)
-- The data are the same on both backends: every "random" draw is a hash of the row number.
--
-- Timeline: account k (2..100000) is created at event index 10k, events 25 s apart, so the
-- million events span about 290 days up to now (inside the 365-day default retention). In
-- every 10 indexes one is an account.created and one the key.created of its primary key;
-- the other 8 are changes to an account created earlier, drawn with a strong skew
-- (account = 1 + floor(created_so_far * u^3)): account 1 gets about 2 % of them, a few
-- accounts thousands, the long tail a handful. Their actions: key.updated 40 %,
-- key.created 25 %, key.deleted 15 %, account.updated 10 %, account.suspended 4 %,
-- account.reactivated 4 %, account.deleted 1 %, admin_token.created and .revoked 0.5 % each.
-- Accounts: 90 % have an external_id (cus_00000042), 1 % are suspended, 2 % have their own
-- max_keys.

INSERT INTO accounts (id, name, created_at, key_count, external_id, status, max_keys)
SELECT value, 'customer ' || value, @T0@ + 250 * value, 1,
       CASE WHEN value % 10 = 0 THEN NULL ELSE 'cus_' || @PAD8(value)@ END,
       CASE WHEN value % 100 = 0 THEN 'suspended' ELSE 'active' END,
       CASE WHEN value % 50 = 0 THEN 500 ELSE NULL END
FROM generate_series(CAST(2 AS BIGINT), 100000) AS value;

INSERT INTO api_keys (id, account_id, name, key_type, key_prefix, digest, is_active, is_primary, created_at)
SELECT value, value, 'Production Key', 'production', 'ml_prod_' || substr(@HEX('p' || value)@, 1, 4),
       @DIGEST('p' || value)@, @TRUE@, @TRUE@, @T0@ + 250 * value
FROM generate_series(CAST(2 AS BIGINT), 100000) AS value;

WITH draws AS MATERIALIZED (
    SELECT value AS i,
           ((value * 7919 + (value * value) % 1000003 * 104729) % 1000003) / 1000003.0 AS r,
           ((value * 15485863 + (value * value) % 999983 * 32452843) % 999983) / 999983.0 AS u
    FROM generate_series(CAST(1 AS BIGINT), 999997) AS value
), picked AS MATERIALIZED (
    SELECT i,
           CASE WHEN i % 10 <= 1 AND i >= 20 THEN i / 10
                ELSE 1 + CAST(floor((CASE WHEN i / 10 > 1 THEN i / 10 ELSE 1 END) * u * u * u) AS BIGINT) END AS acct,
           CASE WHEN i % 10 = 0 AND i >= 20 THEN 'account.created'
                WHEN i % 10 = 1 AND i >= 20 THEN 'key.created'
                WHEN r < 0.40 THEN 'key.updated'
                WHEN r < 0.65 THEN 'key.created'
                WHEN r < 0.80 THEN 'key.deleted'
                WHEN r < 0.90 THEN 'account.updated'
                WHEN r < 0.94 THEN 'account.suspended'
                WHEN r < 0.98 THEN 'account.reactivated'
                WHEN r < 0.99 THEN 'account.deleted'
                WHEN r < 0.995 THEN 'admin_token.created'
                ELSE 'admin_token.revoked' END AS act
    FROM draws
)
INSERT INTO audit_events (id, at, account_id, actor_type, actor_id, actor_prefix, action, target_type, target_id, changes,
                          client_ip, request_id)
SELECT 3 + i, @T0@ + 25 * i, acct,
       CASE WHEN act LIKE 'key.%' THEN 'key' ELSE 'admin_token' END,
       CASE WHEN act LIKE 'key.%' THEN acct ELSE 1 END,
       CASE WHEN act LIKE 'key.%' THEN 'ml_prod_' || substr(@HEX('p' || acct)@, 1, 4) ELSE 'ml_admin_Qx7d' END,
       act,
       CASE WHEN act LIKE 'key.%' THEN 'key' WHEN act LIKE 'admin_token.%' THEN 'admin_token' ELSE 'account' END,
       CASE WHEN act = 'key.created' AND i % 10 = 1 THEN acct WHEN act LIKE 'key.%' THEN 200000 + i
            WHEN act LIKE 'admin_token.%' THEN 2 + i % 7 ELSE acct END,
       CASE act
         WHEN 'account.created' THEN '{"name":{"old":null,"new":"customer ' || acct || '"},"external_id":{"old":null,"new":"cus_'
                                     || @PAD8(acct)@ || '"},"status":{"old":null,"new":"active"}}'
         WHEN 'key.created' THEN '{"name":{"old":null,"new":"CI deploy key"},"key_type":{"old":null,"new":"production"},'
                                 || '"is_active":{"old":null,"new":true},"is_primary":{"old":null,"new":false}}'
         WHEN 'key.updated' THEN '{"is_active":{"old":true,"new":false}}'
         WHEN 'key.deleted' THEN '{"name":{"old":"CI deploy key","new":null},"key_type":{"old":"production","new":null},'
                                 || '"is_active":{"old":false,"new":null},"is_primary":{"old":false,"new":null}}'
         WHEN 'account.updated' THEN '{"name":{"old":"customer ' || acct || '","new":"customer ' || acct || ' GmbH"}}'
         WHEN 'account.suspended' THEN '{"status":{"old":"active","new":"suspended"}}'
         WHEN 'account.reactivated' THEN '{"status":{"old":"suspended","new":"active"}}'
         WHEN 'admin_token.created' THEN '{"name":{"old":null,"new":"billing"},"prefix":{"old":null,"new":"ml_admin_Qx7d"}}'
         WHEN 'admin_token.revoked' THEN '{"name":{"old":"billing","new":null},"prefix":{"old":"ml_admin_Qx7d","new":null}}'
         ELSE NULL END,
       '203.0.113.' || (i % 250 + 1), @HEX('r' || i)@ || @HEX('q' || i)@
FROM picked;
