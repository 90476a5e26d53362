-- random_keys.lua: a wrk script that sends every request with a key drawn at
-- random from a file of keys, one per line (as bench/bulkload writes them).
--
--   KEYS_FILE=keys.txt wrk -t2 -c64 -d10s -s bench/random_keys.lua URL
--   wrk -t2 -c64 -d10s -s bench/random_keys.lua URL -- keys.txt
--
-- Each wrk thread has its own Lua state: init() reads the file, seeds
-- math.random differently per thread and builds one complete request per
-- key up front, so that request() costs one random draw and one table index
-- (building the request text per call would make wrk, which shares the
-- machine with the server, the bottleneck). Any -H headers given to wrk are
-- kept. Optional env MAX_KEYS limits how many keys (the first N) are used.
--
-- Benchmark data only: the file holds live keys in clear.

local reqs = {}
local count = 0
local next_id = 0

-- Runs in the main Lua state once per thread, before init(): hands each
-- thread a distinct number for its seed.
function setup(thread)
    next_id = next_id + 1
    thread:set("thread_id", next_id)
end

function init(args)
    local path = os.getenv("KEYS_FILE") or args[1]
    if not path or path == "" then
        error("random_keys.lua: set KEYS_FILE or pass the key file after --")
    end
    local f = assert(io.open(path, "r"))
    local limit = tonumber(os.getenv("MAX_KEYS") or "") or math.huge
    -- Format one request around a marker, then splice each key in: much
    -- faster than wrk.format per key, which matters with a million keys.
    local headers = {}
    for k, v in pairs(wrk.headers) do
        headers[k] = v
    end
    headers["Authorization"] = "Bearer \1"
    local text = wrk.format(nil, nil, headers)
    local at = assert(string.find(text, "\1", 1, true))
    local head, tail = string.sub(text, 1, at - 1), string.sub(text, at + 1)
    for line in f:lines() do
        if count >= limit then
            break
        end
        if line ~= "" then
            count = count + 1
            reqs[count] = head .. line .. tail
        end
    end
    f:close()
    if count == 0 then
        error("random_keys.lua: no keys in " .. path)
    end
    -- thread_id is set by setup(); mix in the clock so that runs differ.
    math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
    -- LuaJIT's first draws after seeding are poorly mixed: discard a few.
    for _ = 1, 16 do
        math.random()
    end
end

function request()
    return reqs[math.random(count)]
end
