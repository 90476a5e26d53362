-- create_keys.lua: a wrk script that creates API keys as fast as one
-- connection allows: POST /v1/account/api-keys/ with a fixed body. bench/run.sh
-- runs it on one connection (-t1 -c1) as the "writer" beside a read load, with
-- the writer account's key in -H "Authorization: Bearer ..." and the server
-- started with a --max-keys large enough that no POST is refused.
--
--   wrk -t1 -c1 -d5s -s bench/create_keys.lua -H "Authorization: Bearer KEY" \
--       http://127.0.0.1:PORT/v1/account/api-keys/
--
-- Each 201 is one committed key (one SQLite transaction, synchronous=FULL).
wrk.method = "POST"
wrk.body = '{"name":"bench writer","key_type":"sandbox"}'
wrk.headers["Content-Type"] = "application/json"
