-- wrk script for tests/integration/test_clients.py: cycles through the
-- requests of a manifest over wrk's kept-alive connections and checks every
-- answer byte for byte. wrk does not say which request an answer belongs to
-- when a thread holds several connections, so an answer is matched by what
-- identifies it: its ETag (the SHA-256 of the bytes, or the export's digest)
-- and its Content-Range.
--   wrk -c 8 -t 2 -d 3s -s wrk_check.lua http://HOST:PORT -- MANIFEST
-- MANIFEST: one request per line, tab-separated: path, Authorization value,
-- Range value or "-", expected status, ETag, Content-Range or "-", file
-- holding the expected body. done() prints one line "wrk-check: {json}".

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

local function read_file(path)
	local f = assert(io.open(path, "rb"))
	local data = f:read("*a")
	f:close()
	return data
end

function init(args)
	reqs, expect = {}, {}
	n, ok, bad, first_bad = 0, 0, 0, ""
	for line in io.lines(args[1]) do
		local path, auth, range, status, etag, crange, file =
			line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
		local headers = { ["Authorization"] = auth }
		if range ~= "-" then
			headers["Range"] = range
		end
		table.insert(reqs, wrk.format("GET", path, headers))
		expect[etag .. "|" .. crange] = { status = tonumber(status), body = read_file(file) }
	end
end

function request()
	n = n + 1
	return reqs[(n - 1) % #reqs + 1]
end

function response(status, headers, body)
	local h = {}
	for k, v in pairs(headers) do
		h[k:lower()] = v
	end
	local want = expect[(h["etag"] or "") .. "|" .. (h["content-range"] or "-")]
	if want and want.status == status and want.body == body then
		ok = ok + 1
	else
		bad = bad + 1
		if first_bad == "" then
			-- printed inside a JSON string: the ETag's quotes left out
			first_bad = string.format("%d etag=%s range=%s len=%d", status,
				(h["etag"] or ""):gsub('"', ""), h["content-range"] or "-", #body)
		end
	end
end

function done(summary, latency, requests)
	local sum_ok, sum_bad, why = 0, 0, ""
	for _, t in ipairs(threads) do
		sum_ok = sum_ok + t:get("ok")
		sum_bad = sum_bad + t:get("bad")
		if why == "" then
			why = t:get("first_bad")
		end
	end
	local e = summary.errors
	io.write(string.format('wrk-check: {"requests": %d, "seconds": %.3f, "bytes": %d, ' ..
		'"ok": %d, "bad": %d, "firstBad": "%s", "connect": %d, "read": %d, "write": %d, ' ..
		'"status": %d, "timeout": %d, "p50us": %d, "p99us": %d}\n',
		summary.requests, summary.duration / 1e6, summary.bytes, sum_ok, sum_bad, why,
		e.connect, e.read, e.write, e.status, e.timeout,
		latency:percentile(50), latency:percentile(99)))
end
