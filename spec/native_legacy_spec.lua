-- Specs of the legacy part of the binding: native.legacy_parser / native.legacy_nick_is_id
-- (the jabber:iq:conference payload, docs/protocol.md §7). The .so is loaded straight from package.cpath.
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()
local st = require "util.stanza"

local NS = "jabber:iq:conference"

local function triple(cond, ...)
	local r, c, t = ...
	assert.is_nil(r)
	assert.equal(cond, c)
	assert.is_string(t)
	assert.truthy(#t > 0)
	return t
end

describe("native.legacy_parser", function()
	local parser = native.legacy_parser()

	it("parses nicks in order, secret, name and the privacy flag", function()
		local r = parser:parse("<query xmlns='jabber:iq:conference'><secret>foo</secret><nick>dude</nick>"
			.. "<nick>dude_</nick><privacy/><name>Demo Room</name></query>")
		assert.same({ nicks = { "dude", "dude_" }, secret = "foo", name = "Demo Room", privacy = true }, r)
	end)

	it("accepts any payload element name and an empty payload", function()
		assert.same({ nicks = {}, privacy = false }, parser:parse("<enter xmlns='jabber:iq:conference'/>"))
	end)

	it("parses what util.stanza serializes (the door passes tostring(iq.tags[1]))", function()
		local q = st.stanza("query", { xmlns = NS }):text_tag("nick", "a<b>&'\"")
			:text_tag("secret", ""):tag("privacy"):up();
		local r = parser:parse(tostring(q))
		assert.same({ "a<b>&'\"" }, r.nicks)
		assert.equal("", r.secret) -- present but empty: "given", which differs from absent
		assert.is_true(r.privacy)
	end)

	it("keeps empty and whitespace nicks for the caller to judge", function()
		assert.same({ "", "", " " }, parser:parse("<query xmlns='jabber:iq:conference'><nick/><nick></nick><nick> </nick></query>").nicks)
	end)

	it("returns nil, condition, text for bad input and keeps serving", function()
		triple("bad-request", parser:parse("<query xmlns='jabber:iq:browse'/>"))
		triple("bad-request", parser:parse("<query xmlns='jabber:iq:conference'><nick>a</query>"))
		triple("bad-request", parser:parse(""))
		triple("bad-request", parser:parse("<query xmlns='jabber:iq:conference'><nick>a<b/></nick></query>"))
		triple("bad-request", parser:parse("<!DOCTYPE q [<!ENTITY e 'x'>]><query xmlns='jabber:iq:conference'/>"))
		local many = { "<query xmlns='jabber:iq:conference'>" }
		for i = 1, 1000 do many[#many + 1] = "<nick>n" .. i .. "</nick>" end
		many[#many + 1] = "</query>"
		assert.equal("more than 16 <nick> elements", triple("policy-violation", parser:parse(table.concat(many))))
		assert.equal("<nick> longer than 1023 bytes",
			triple("policy-violation", parser:parse("<query xmlns='jabber:iq:conference'><nick>" .. ("x"):rep(1024) .. "</nick></query>")))
		assert.same({ "ok" }, parser:parse("<query xmlns='jabber:iq:conference'><nick>ok</nick></query>").nicks)
	end)

	it("takes its limits per instance", function()
		local small = native.legacy_parser({ max_nicks = 2, max_nick = 3, max_secret = 2, max_name = 1, max_depth = 2 })
		assert.same({ "abc", "d" }, small:parse("<query xmlns='jabber:iq:conference'><nick>abc</nick><nick>d</nick></query>").nicks)
		triple("policy-violation", small:parse("<query xmlns='jabber:iq:conference'><nick>a</nick><nick>b</nick><nick>c</nick></query>"))
		triple("policy-violation", small:parse("<query xmlns='jabber:iq:conference'><nick>abcd</nick></query>"))
		triple("policy-violation", small:parse("<query xmlns='jabber:iq:conference'><secret>abc</secret></query>"))
		triple("policy-violation", small:parse("<query xmlns='jabber:iq:conference'><name>ab</name></query>"))
		triple("bad-request", small:parse("<query xmlns='jabber:iq:conference'><a><b/></a></query>"))
		-- the default instance is unaffected
		assert.same({ "abcd" }, parser:parse("<query xmlns='jabber:iq:conference'><nick>abcd</nick></query>").nicks)
	end)

	it("raises on bad arguments", function()
		assert.has_error(function() native.legacy_parser({ max_nicks = 0 }) end)
		assert.has_error(function() native.legacy_parser({ max_nick = "x" }) end)
		assert.has_error(function() native.legacy_parser({ unknown = 1 }) end)
		assert.has_error(function() native.legacy_parser("x") end)
		assert.has_error(function() parser:parse() end)
		assert.has_error(function() parser.parse({}, "<x/>") end)
	end)

	it("is closable and says so", function()
		local p = native.legacy_parser()
		assert.truthy(tostring(p):find("^legacy_parser: "))
		do local _ <close> = p end
		assert.truthy(tostring(p):find("closed"))
		assert.has_error(function() p:parse("<query xmlns='jabber:iq:conference'/>") end)
	end)
end)

describe("native.legacy_nick_is_id", function()
	it("is true for 40 hex digits only", function()
		assert.is_true(native.legacy_nick_is_id("d0760fe8273bc7d6448e713a05c292418e18af6f"))
		assert.is_true(native.legacy_nick_is_id(("A"):rep(40)))
		assert.is_false(native.legacy_nick_is_id(("a"):rep(39)))
		assert.is_false(native.legacy_nick_is_id(("g"):rep(40)))
		assert.is_false(native.legacy_nick_is_id("alice"))
	end)
end)
