-- Specs of the Lua binding of the C core (native/README.md). The .so is loaded straight from
-- package.cpath (tests/run-busted.sh puts the build first), never through package.path, so a
-- stray conference_request_native.lua elsewhere on the path cannot stand in for it.
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()
local st = require "util.stanza"
local xml = require "util.xml"

local NS = "http://jitsi.org/protocol/focus"
local REQ = "<conference xmlns='http://jitsi.org/protocol/focus' room='room1@conference.localhost'"
	.. " machine-uid='0123456789abcdef0123456789abcdef'><property name='rtcstatsEnabled' value='false'/>"
	.. "<property name='visitors-version' value='1'/><property name='startAudioMuted' value='10'/></conference>"

local function triple(cond, ...)
	local r, c, t = ...
	assert.is_nil(r)
	assert.equal(cond, c)
	assert.is_string(t)
	assert.truthy(#t > 0)
	return t
end

-- util.stanza / util.xml element → plain comparable table (an xmlns equal to the parent's, which
-- util.xml repeats on every child, is dropped)
local function plain(el, parent_ns)
	local attr = {}
	for k, v in pairs(el.attr) do attr[k] = v end
	if attr.xmlns == parent_ns then attr.xmlns = nil end
	local out = { name = el.name, attr = attr }
	for i, child in ipairs(el) do out[i] = plain(child, el.attr.xmlns or parent_ns) end
	assert.equal(#el, #el.tags)
	return out
end

-- A request built in Lua: a duplicate property name (the last value wins) and a property
-- without a name (skipped).
local function built_request()
	return st.stanza("conference", { xmlns = NS, room = "a@b", ["session-id"] = "s", token = "t" })
		:tag("property", { name = "x", value = "<&>" }):up()
		:tag("property", { name = "x", value = "2" }):up()
		:tag("property", { value = "no name" }):up()
end

describe("conference_request_native", function()
	it("is the compiled module with a version", function()
		assert.is_string(native._VERSION)
		assert.is_function(native.codec)
		assert.is_function(native.registry)
	end)

	it("maps every condition to an XMPP type and an HTTP status", function()
		local want = {
			["bad-request"] = { "modify", 400 }, ["jid-malformed"] = { "modify", 400 },
			["item-not-found"] = { "cancel", 404 }, ["not-authorized"] = { "auth", 403 },
			["not-acceptable"] = { "modify", 400 }, ["resource-constraint"] = { "wait", 429 },
			["internal-server-error"] = { "cancel", 500 }, ["not-allowed"] = { "cancel", 405 },
			["conflict"] = { "cancel", 409 }, ["forbidden"] = { "auth", 403 },
			["service-unavailable"] = { "cancel", 503 }, ["policy-violation"] = { "modify", 400 },
		}
		local n = 0
		for name, tw in pairs(want) do
			assert.same({ type = tw[1], http = tw[2] }, native.conditions[name])
		end
		for _ in pairs(native.conditions) do n = n + 1 end
		assert.equal(12, n)
	end)
end)

describe("native.codec", function()
	it("rejects bad options", function()
		assert.has_error(function() native.codec("x") end)
		assert.has_error(function() native.codec({ max_room = 0 }) end)
		assert.has_error(function() native.codec({ max_room = -1 }) end)
		assert.has_error(function() native.codec({ max_room = 1.5 }) end)
		assert.has_error(function() native.codec({ max_room = "10" }) end)
		assert.has_error(function() native.codec({ unknown_option = 1 }) end)
		assert.has_error(function() native.codec({ authentication = "yes" }) end)
		assert.has_error(function() native.codec({ external_auth = 1 }) end)
		assert.has_error(function() native.codec({ extra_properties = { a = 1 } }) end)
		assert.has_error(function() native.codec({ extra_properties = { [1] = "x" } }) end)
		assert.has_error(function() native.codec({ extra_properties = { ["a"] = "\1" } }) end)
		assert.has_error(function() native.codec({ stanza_mt = 5 }) end)
		assert.is_userdata(native.codec())
		assert.is_userdata(native.codec({}))
	end)

	it("has a __tostring and closes", function()
		local c = native.codec()
		assert.matches("codec", tostring(c))
		do
			local cc <close> = native.codec()
			assert.truthy(cc:parse_xml(REQ))
		end
		getmetatable(c).__close(c)
		assert.matches("closed", tostring(c))
		assert.has_error(function() c:parse_xml(REQ) end)
	end)

	describe("parse_xml", function()
		local codec = native.codec()
		it("parses the request", function()
			local r = codec:parse_xml(REQ)
			assert.same({
				room = "room1@conference.localhost",
				machine_uid = "0123456789abcdef0123456789abcdef",
				properties = { "rtcstatsEnabled", "false", "visitors-version", "1", "startAudioMuted", "10" },
			}, r)
		end)
		it("parses what util.stanza serializes", function()
			local s = built_request()
			local r = codec:parse_xml(tostring(s))
			assert.same({ room = "a@b", session_id = "s", token = "t", properties = { "x", "2" } }, r)
		end)
		it("returns nil, condition, text on bad input", function()
			triple("bad-request", codec:parse_xml(""))
			triple("bad-request", codec:parse_xml("<conference/>"))
			triple("bad-request", codec:parse_xml("<!DOCTYPE x><conference xmlns='" .. NS .. "' room='a@b'/>"))
			assert.equal("missing 'room'", triple("bad-request", codec:parse_xml("<conference xmlns='" .. NS .. "'/>")))
			triple("jid-malformed", codec:parse_xml("<conference xmlns='" .. NS .. "' room='a@b/c'/>"))
			triple("policy-violation", codec:parse_xml("<conference xmlns='" .. NS .. "' room='a@b' token='"
				.. ("t"):rep(16385) .. "'/>"))
		end)
		it("raises on a non-string argument", function()
			assert.has_error(function() codec:parse_xml() end)
			assert.has_error(function() codec:parse_xml({}) end)
			assert.has_error(function() codec.parse_xml({}, REQ) end)
		end)
		it("uses the per-instance limits", function()
			triple("policy-violation", native.codec({ max_properties = 2 }):parse_xml(REQ))
			assert.truthy(native.codec({ max_properties = 3 }):parse_xml(REQ))
			local small = native.codec({ max_xml_depth = 1, max_room = 5, max_token = 2 })
			triple("bad-request", small:parse_xml(REQ))
			triple("bad-request", small:parse_xml("<conference xmlns='" .. NS .. "' room='a@b'><x/></conference>"))
			triple("jid-malformed", small:parse_xml("<conference xmlns='" .. NS .. "' room='ab@cde'/>"))
			assert.truthy(small:parse_xml("<conference xmlns='" .. NS .. "' room='a@cde' token='tt'/>"))
			triple("policy-violation", small:parse_xml("<conference xmlns='" .. NS .. "' room='a@cde' token='ttt'/>"))
			assert.truthy(codec:parse_xml(REQ)) -- the other codec is untouched
		end)
	end)

	describe("parse_stanza", function()
		local codec = native.codec()
		-- what util.xml makes of bytes is what Prosody's stream parser hands the IQ handler
		local function both(c, bytes)
			local el = assert(xml.parse(bytes))
			return { c:parse_xml(bytes) }, { c:parse_stanza(el) }
		end
		local function same_as_xml(c, bytes)
			local from_xml, from_stanza = both(c, bytes)
			assert.same(from_xml, from_stanza)
			return from_stanza
		end
		local C = "<conference xmlns='" .. NS .. "' "
		local corpus = {
			REQ,
			C .. "room='a@b'/>",
			C .. "room='a@b' session-id='s' token='t' machine-uid='m' other='o' xml:lang='en'/>",
			C .. "room='a@b'><property name='x' value='&lt;&amp;&gt;&apos;&quot;'/><property name='x' value='2'/>"
				.. "<property value='no name'/><property name=''/><property name='novalue'/></conference>",
			C .. "room='a@b'><property xmlns='urn:other' name='x' value='1'/><y:property xmlns:y='" .. NS
				.. "' name='prefixed' value='1'/></conference>",
			C .. "room='a@b'><other><property name='deeper' value='1'/></other>text<property name='p' value='v'/></conference>",
			C .. "room='a@b' f:room='x@y' xmlns:f='urn:f'/>",
			C .. "room=''/>",
			C .. "/>",
			C .. "room='a@b/c'/>",
			C .. "room='ab'/>",
			C .. "room='a@b' token='" .. ("t"):rep(16385) .. "'/>",
			C .. "room='a@b' machine-uid='" .. ("m"):rep(257) .. "'/>",
			C .. "room='a@b'><property name='" .. ("n"):rep(257) .. "' value='v'/></conference>",
			C .. "room='a@b'><property name='n' value='" .. ("v"):rep(4097) .. "'/></conference>",
			"<conference xmlns='urn:other' room='a@b'/>",
			"<other xmlns='" .. NS .. "' room='a@b'/>",
			"<conference room='a@b'/>",
		}
		do -- 65 properties, and nesting one past and at the depth limit
			local props = {}
			for i = 1, 65 do props[i] = ("<property name='p%d' value='%d'/>"):format(i, i) end
			table.insert(corpus, C .. "room='a@b'>" .. table.concat(props) .. "</conference>")
			table.insert(corpus, C .. "room='a@b'>" .. table.concat(props, "", 1, 64) .. "</conference>")
			table.insert(corpus, C .. "room='a@b'>" .. ("<x>"):rep(15) .. ("</x>"):rep(15) .. "</conference>")
			table.insert(corpus, C .. "room='a@b'>" .. ("<x>"):rep(16) .. ("</x>"):rep(16) .. "</conference>")
			table.insert(corpus, C .. "room='a@b'><property name='n' value='" .. ("v"):rep(4097) .. "'>"
				.. ("<x>"):rep(16) .. ("</x>"):rep(16) .. "</property></conference>")
		end
		it("gives what parse_xml gives for the same payload, request or error", function()
			local oks = 0
			for _, bytes in ipairs(corpus) do
				local r = same_as_xml(codec, bytes)
				if r[1] then oks = oks + 1 end
			end
			assert.equal(9, oks) -- the corpus has both outcomes
		end)
		it("uses the per-instance limits, as parse_xml does", function()
			local small = native.codec({ max_xml_depth = 2, max_room = 5, max_token = 2, max_properties = 2 })
			for _, bytes in ipairs(corpus) do same_as_xml(small, bytes) end
			for depth = 1, 3 do
				local c = native.codec({ max_xml_depth = depth })
				for _, bytes in ipairs(corpus) do same_as_xml(c, bytes) end
			end
		end)
		it("reads trees built in Lua: children inherit the namespace", function()
			local s = built_request()
				:tag("property", { xmlns = "urn:other", name = "other", value = "1" }):up()
			assert.same(codec:parse_xml(tostring(s)), codec:parse_stanza(s))
			assert.same({ room = "a@b", session_id = "s", token = "t", properties = { "x", "2" } }, codec:parse_stanza(s))
		end)
		it("answers hostile trees with nil, condition, text and keeps working", function()
			local deep = st.stanza("conference", { xmlns = NS, room = "a@b" })
			for _ = 1, 100000 do deep:tag("x") end
			assert.matches("deeper than 16", triple("bad-request", codec:parse_stanza(deep)))
			local huge_limit = native.codec({ max_xml_depth = 1000000 })
			assert.truthy(huge_limit:parse_stanza(deep)) -- 100,001 levels walked without C recursion
			triple("bad-request", codec:parse_stanza({}))
			triple("bad-request", codec:parse_stanza({ name = "conference", attr = {} }))
			triple("bad-request", codec:parse_stanza({ name = "conference", attr = { xmlns = NS, room = "a\1@b" } }))
			triple("bad-request", codec:parse_stanza({ name = "conference", attr = { xmlns = NS, room = "a\255@b" } }))
			local function with_property(attr)
				return { name = "conference", attr = { xmlns = NS, room = "a@b" }, tags = { { name = "property", attr = attr } } }
			end
			triple("bad-request", codec:parse_stanza(with_property({ name = "n\0", value = "v" })))
			triple("bad-request", codec:parse_stanza(with_property({ name = "n", value = "\239\191\190" })))
			-- names and namespaces are compared with their length
			triple("bad-request", codec:parse_stanza({ name = "conference\0x", attr = { xmlns = NS, room = "a@b" } }))
			triple("bad-request", codec:parse_stanza({ name = "conference", attr = { xmlns = NS .. "\0", room = "a@b" } }))
			assert.same({ room = "a@b", properties = {} }, codec:parse_stanza({ name = "conference", attr = { xmlns = NS, room = "a@b" },
				tags = { { name = "property\0", attr = { name = "n", value = "v" } } } }))
			-- Prosody's stream parser marks an element without namespace with xmlns = ""
			assert.same({ room = "a@b", properties = {} }, codec:parse_stanza(with_property({ xmlns = "", name = "n", value = "v" })))
			assert.same({ room = "a@b", properties = { "n", "v" } },
				codec:parse_stanza(with_property({ xmlns = NS, name = "n", value = "v" })))
			-- values that are not strings are absent, as no parser could have made them
			triple("bad-request", codec:parse_stanza({ name = "conference", attr = { xmlns = NS, room = 5 } }))
			assert.same({ room = "a@b", properties = {} }, codec:parse_stanza({ name = "conference",
				attr = { xmlns = NS, room = "a@b", token = {} }, tags = { { name = "property", attr = { name = 1, value = "v" } },
				"text", { name = "property" } } }))
			assert.has_error(function() codec:parse_stanza("<conference/>") end)
			assert.has_error(function() codec:parse_stanza() end)
			assert.same(same_as_xml(codec, REQ), { codec:parse_stanza(xml.parse(REQ)) })
		end)
	end)

	describe("parse_json", function()
		local codec = native.codec()
		it("parses and coerces", function()
			local r = codec:parse_json('{"room":"r@d","machineUid":"m","sessionId":"s","token":"x",'
				.. '"properties":{"a":true,"b":1,"c":1.5,"d":null,"e":"s"}}')
			assert.same({ room = "r@d", machine_uid = "m", session_id = "s",
				properties = { "a", "true", "b", "1", "c", "1.5", "e", "s" } }, r)
		end)
		it("returns nil, condition, text on bad input", function()
			triple("bad-request", codec:parse_json("[]"))
			triple("bad-request", codec:parse_json("{"))
			triple("bad-request", codec:parse_json('{"room":"a@b","room":"c@d"}'))
			triple("bad-request", codec:parse_json('{"room":1}'))
			triple("bad-request", codec:parse_json('{"room":"a@b","properties":{"x":{}}}'))
			triple("bad-request", codec:parse_json('{"room":"a\\u0001@b"}'))
			triple("jid-malformed", codec:parse_json('{"room":"ab"}'))
			triple("bad-request", native.codec({ max_json_depth = 1 }):parse_json('{"room":"a@b","x":[]}'))
		end)
		it("raises on a non-string argument", function()
			assert.has_error(function() codec:parse_json(nil) end)
		end)
	end)

	describe("rendering", function()
		local codec = native.codec({ stanza_mt = st.stanza_mt, authentication = true, external_auth = false,
			sip_gateway = true, extra_properties = { zz = "last", aa = "fir'st" } })
		local answer = { room = "room1@conference.localhost", ready = true, focus_jid = "focus.localhost",
			session_id = "s&1", identity = "id", vnode = "v1", visitors_supported = true }

		it("renders XML byte-exact", function()
			assert.equal("<conference xmlns='http://jitsi.org/protocol/focus' room='room1@conference.localhost'"
				.. " ready='true' focusjid='focus.localhost' session-id='s&amp;1' identity='id' vnode='v1'>"
				.. "<property name='authentication' value='true'/><property name='externalAuth' value='false'/>"
				.. "<property name='sipGatewayEnabled' value='true'/><property name='visitors-supported' value='true'/>"
				.. "<property name='aa' value='fir&apos;st'/><property name='zz' value='last'/></conference>",
				codec:render_xml(answer))
		end)

		it("renders JSON byte-exact", function()
			assert.equal('{"room":"room1@conference.localhost","ready":false,"focusJid":"focus.localhost",'
				.. '"properties":{"authentication":"false","live":"false"}}',
				native.codec():render_json({ room = "room1@conference.localhost", ready = false,
					focus_jid = "focus.localhost", live_queue = true }))
		end)

		it("builds a util.stanza element equal to render_xml", function()
			for _, a in ipairs({ answer, { room = "r@d", ready = false, focus_jid = "f", live_queue = true } }) do
				local el = codec:render_stanza(a)
				assert.equal(st.stanza_mt, getmetatable(el))
				assert.is_true(st.is_stanza(el))
				for _, child in ipairs(el) do
					assert.equal(st.stanza_mt, getmetatable(child))
					assert.is_nil(child.attr.xmlns)
				end
				local from_xml = xml.parse(codec:render_xml(a))
				assert.same(plain(from_xml), plain(el))
				assert.same(plain(from_xml), plain(xml.parse(tostring(el)))) -- serializes the same
				local iq = st.iq({ type = "result", id = "1" }):add_child(el)
				assert.equal(el, iq.tags[1])
				assert.equal("authentication", el:get_child("property").attr.name)
			end
		end)

		it("raises on a bad answer", function()
			assert.has_error(function() codec:render_xml({ ready = true, focus_jid = "f" }) end)
			assert.has_error(function() codec:render_xml({ room = "r@d", focus_jid = "f" }) end)
			assert.has_error(function() codec:render_json({ room = "r@d", ready = true }) end)
			assert.has_error(function() codec:render_json({ room = "r@d", ready = true, focus_jid = "f", vnode = 1 }) end)
			assert.has_error(function() codec:render_xml({ room = "r\0@d", ready = true, focus_jid = "f" }) end)
			assert.has_error(function() codec:render_xml("x") end)
			assert.has_error(function() native.codec():render_stanza(answer) end) -- no stanza_mt
		end)
	end)
end)

describe("native.registry", function()
	it("rejects bad options", function()
		assert.has_error(function() native.registry({ max_rooms = 0 }) end)
		assert.has_error(function() native.registry({ bogus = 1 }) end)
		assert.has_error(function() native.registry(1) end)
	end)

	it("walks absent → pending → ready → absent", function()
		local r = native.registry()
		assert.equal("absent", r:state("a@b"))
		assert.is_true(r:set_pending("a@b"))
		assert.equal("pending", r:state("a@b"))
		assert.equal(1, #r)
		assert.same({}, r:set_ready("a@b"))
		assert.equal("ready", r:state("a@b"))
		assert.is_true(r:set_pending("a@b"))
		assert.same({}, r:forget("a@b"))
		assert.equal("absent", r:state("a@b"))
		assert.equal(0, #r)
		assert.has_error(function() r:state() end)
		assert.has_error(function() r:state({}) end)
		assert.has_error(function() r.state({}, "x") end)
	end)

	it("hands back the identical waiter values", function()
		local r = native.registry()
		r:set_pending("a@b")
		local w1, w2, w3 = { who = 1 }, { who = 2 }, function() end
		local id1 = r:wait("a@b", w1, 10)
		local id2 = r:wait("a@b", w2, 20)
		local id3 = r:wait("a@b", w3, 30)
		assert.truthy(id3 ~= id1 and id3 ~= id2)
		assert.is_number(id1)
		assert.truthy(id1 > 0 and id2 > 0 and id1 ~= id2)
		assert.same({ rooms = 1, pending = 1, ready = 0, waiters = 3 }, r:stats())
		assert.is_true(r:cancel(id2))
		assert.is_false(r:cancel(id2))
		assert.is_false(r:cancel(-1))
		local got = r:set_ready("a@b")
		assert.equal(2, #got)
		assert.equal(w1, got[1])
		assert.equal(w3, got[2])
		assert.is_false(r:cancel(id1))
		triple("item-not-found", r:wait("a@b", {}, 1))
		triple("item-not-found", r:wait("x@y", {}, 1))
		assert.has_error(function() r:wait("a@b", nil, 1) end)
		assert.has_error(function() r:wait("a@b", {}, "soon") end)
		assert.has_error(function() r:cancel("x") end)
	end)

	it("expires by deadline, then arrival", function()
		local r = native.registry()
		r:set_pending("x")
		r:set_pending("y")
		local a, b, c = { "a" }, { "b" }, { "c" }
		r:wait("x", a, 5)
		r:wait("y", b, 1)
		r:wait("x", c, 1)
		assert.same({}, r:expire(0))
		local got = r:expire(1)
		assert.equal(2, #got)
		assert.equal(b, got[1])
		assert.equal(c, got[2])
		got = r:forget("x")
		assert.equal(a, got[1])
		assert.equal(0, r:stats().waiters)
	end)

	it("enforces its bounds with resource-constraint", function()
		local r = native.registry({ max_rooms = 1, max_waiters_per_room = 1, max_waiters = 1 })
		r:set_pending("a")
		triple("resource-constraint", r:set_pending("b"))
		triple("resource-constraint", r:set_ready("b"))
		assert.truthy(r:wait("a", {}, 1))
		triple("resource-constraint", r:wait("a", {}, 1))
	end)

	it("answers notify_due once per interval", function()
		local r = native.registry()
		assert.is_false(r:notify_due("a", 0, 5))
		r:set_pending("a")
		assert.is_true(r:notify_due("a", 100, 5))
		assert.is_false(r:notify_due("a", 104, 5))
		assert.is_true(r:notify_due("a", 105, 5))
		assert.has_error(function() r:notify_due("a") end)
	end)

	it("iterates and prints", function()
		local r = native.registry()
		r:set_pending("p")
		r:set_ready("q")
		r:wait("p", {}, 1)
		local seen = {}
		for room, state, n in r:each() do seen[room] = { state, n } end
		assert.same({ p = { "pending", 1 }, q = { "ready", 0 } }, seen)
		assert.matches("2 rooms", tostring(r))
	end)

	it("closes and is collected with waiters inside", function()
		local weak = setmetatable({}, { __mode = "v" })
		do
			local r = native.registry()
			r:set_pending("a")
			local w = {}
			weak[1] = w
			r:wait("a", w, 1)
			local c = native.codec()
			c:parse_xml(REQ)
		end
		collectgarbage()
		collectgarbage()
		assert.is_nil(weak[1])
		local r2 = native.registry()
		do
			local r3 <close> = native.registry()
			r3:set_pending("a")
			r3:wait("a", {}, 1)
		end
		getmetatable(r2).__close(r2)
		assert.has_error(function() r2:state("a") end)
		assert.equal(0, #r2)
		assert.matches("closed", tostring(r2))
	end)
end)
