-- random_keys.lua: a wrk script that sends every request with an
-- `Authorization: Bearer` key drawn at random from a file of keys, one per
-- line (as bench/bulkload writes them). Used by bench/run.sh.
--
--   KEYS_FILE=keys.txt KEYS_SHARDS=2 wrk -t2 -c64 -d10s -s bench/random_keys.lua URL
--   wrk -t2 -c64 -d10s -s bench/random_keys.lua URL -- keys.txt 2
--
-- KEYS_SHARDS (or the second argument; default 1) should be wrk's -t: thread
-- n then keeps only every KEYS_SHARDS-th key (its shard), so that all the
-- threads together draw from every key while each builds only its part.
--
-- Why it is built this way: each wrk thread has its own Lua state, and wrk
-- calls init() for thread 2 in the main thread while thread 1 is already
-- sending, so a slow init() skews the measurement. init() therefore reads the
-- file in one go, stops the GC while it builds one complete request per key
-- of its shard (about 0.25 s per half million keys), and request() costs one
-- random draw and one table index: building the request text per call would
-- make wrk, which shares the two cores with the server, the bottleneck.
-- math.random is seeded per thread. Any -H headers given to wrk are kept.
--
-- Benchmark data only: the key file holds live keys in clear.

local reqs = {}
local count = 0
local next_id = 0

-- Runs in the main Lua state once per thread, before that thread's init().
function setup(thread)
    next_id = next_id + 1
    thread:set("thread_id", next_id)
end

function init(args)
    local path = os.getenv("KEYS_FILE") or args[1]
    local shards = tonumber(os.getenv("KEYS_SHARDS") or args[2] or "1") or 1
    if not path or path == "" then
        error("random_keys.lua: set KEYS_FILE or pass the key file after --")
    end
    local me = ((thread_id or 1) - 1) % shards

    -- One request around a marker, then each key spliced in.
    local headers = {}
    for k, v in pairs(wrk.headers) do
        headers[k] = v
    end
    headers["Authorization"] = "Bearer \1"
    local text = wrk.format(nil, nil, headers)
    local at = assert(string.find(text, "\1", 1, true))
    local head, tail = string.sub(text, 1, at - 1), string.sub(text, at + 1)

    collectgarbage("stop")
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    local pos, len, line = 1, #data, 0
    while pos <= len do
        local eol = string.find(data, "\n", pos, true) or (len + 1)
        local last = eol - 1
        if last >= pos and string.byte(data, last) == 13 then
            last = last - 1
        end
        if last >= pos then
            if line % shards == me then
                count = count + 1
                reqs[count] = head .. string.sub(data, pos, last) .. tail
            end
            line = line + 1
        end
        pos = eol + 1
    end
    data = nil
    collectgarbage("restart")
    if count == 0 then
        error("random_keys.lua: no keys for thread " .. tostring(thread_id) .. " in " .. path ..
              " (fewer keys than KEYS_SHARDS?)")
    end

    -- Distinct per thread, different on every run.
    math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
    -- LuaJIT's first draws after seeding are poorly mixed: discard a few.
    for _ = 1, 16 do
        math.random()
    end
end

function request()
    return reqs[math.random(count)]
end
