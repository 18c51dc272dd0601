-- Specs of external_focus.lib's forward (visitors.lib, issue 11 item 3): one request forwarded to the
-- focus in the client_proxy form and the focus's answer relayed to that requester only. Same small
-- stand-ins as spec/mod_external_focus_spec.lua (module, prosody; Prosody's util.stanza/util.promise).
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()
local st = require "util.stanza"
local promise = require "util.promise"
local new_error = require "util.error".new

local FOCUS = "focus@auth.localhost"
local MUC = "conference.localhost"
local HOST = "focus.localhost"
local NS = "http://jitsi.org/protocol/focus"

package.loaded["core.configmanager"] = { getconfig = function() return { ["auth.localhost"] = {} } end }

local function load()
	local env = { hooks = {}, iqs = {}, sent = {} }
	_G.module = {
		host = HOST,
		log = function() end,
		measure = function() return function() end end,
		hook = function(_, name, fn) env.hooks[name] = env.hooks[name] or {}; table.insert(env.hooks[name], fn) end,
		hook_global = function() end,
		context = function() return { hook = function() end } end,
		send = function(_, stanza) table.insert(env.sent, stanza) end,
		send_iq = function(_, stanza)
			local entry = { stanza = stanza }
			entry.promise = promise.new(function(resolve, reject) entry.resolve, entry.reject = resolve, reject end)
			table.insert(env.iqs, entry)
			return entry.promise
		end,
		add_timer = function() end,
	}
	_G.prosody = { hosts = { [MUC] = { modules = { muc = { live_rooms = function() return function() end end } } },
		[HOST] = {}, ["auth.localhost"] = {} } }
	local lib = assert(loadfile("mod_conference_request/external_focus.lib.lua"))()
	local ext = lib.new({ focus = FOCUS, ready_wait = 10, muc_hosts = { [MUC] = true } }, native.registry({}), nil,
		native.conditions)
	ext.start()
	function env.online()
		for _, fn in ipairs(env.hooks["presence/host"]) do fn({ stanza = st.presence({ from = FOCUS .. "/f1", to = HOST }) }) end
	end
	return ext, env
end

local room = "r1@" .. MUC
local REQUEST = { room = room, machine_uid = "m1", properties = { "visitors-version", "1", "visitor", "true" } }
local REQUESTER = { door = "xmpp", jid = "alice@localhost/r1" }

describe("external_focus.lib forward", function()
	it("answers ready=false and sends nothing while no focus resource is online", function()
		local ext, env = load()
		local got
		ext.forward(room, REQUEST, REQUESTER, function(r) got = r end)
		assert.is_false(got.ready)
		assert.equal(0, #env.iqs)
	end)

	it("forwards in the client_proxy form and relays vnode, focusjid, session-id, visitors-supported", function()
		local ext, env = load()
		env.online()
		local got
		ext.forward(room, REQUEST, REQUESTER, function(r) got = r end)
		assert.equal(1, #env.iqs)
		local iq = env.iqs[1].stanza
		assert.equal(HOST .. "/alice@localhost/r1", iq.attr.from)
		assert.equal(FOCUS .. "/f1", iq.attr.to)
		local conf = iq:get_child("conference", NS)
		assert.equal(room, conf.attr.room)
		assert.equal("m1", conf.attr["machine-uid"])
		assert.equal(2, #conf.tags)
		assert.is_nil(got) -- only once the focus answers
		local reply = st.reply(iq):tag("conference", { xmlns = NS, room = room, ready = "true",
			focusjid = "focus@v3.meet.jitsi", vnode = "v3", ["session-id"] = "s-1" })
			:tag("property", { name = "visitors-supported", value = "true" }):up()
		env.iqs[1].resolve({ stanza = reply })
		assert.same({ room = room, ready = true, focus_jid = "focus@v3.meet.jitsi", vnode = "v3", session_id = "s-1",
			visitors_supported = true }, got)
	end)

	it("relays live=false (queued by the focus)", function()
		local ext, env = load()
		env.online()
		local got
		ext.forward(room, REQUEST, { door = "http" }, function(r) got = r end)
		assert.equal(HOST, env.iqs[1].stanza.attr.from) -- HTTP: no JID to pack
		local reply = st.reply(env.iqs[1].stanza):tag("conference", { xmlns = NS, room = room, ready = "false",
			focusjid = FOCUS }):tag("property", { name = "live", value = "false" }):up()
		env.iqs[1].resolve({ stanza = reply })
		assert.is_false(got.ready)
		assert.is_true(got.live_queue)
		assert.is_nil(got.vnode)
	end)

	it("relays the focus's error with its application children; no answer gives ready=false", function()
		local ext, env = load()
		env.online()
		local got
		ext.forward(room, REQUEST, REQUESTER, function(r) got = r end)
		local err_reply = st.error_reply(env.iqs[1].stanza, "auth", "not-authorized", "no")
		err_reply:get_child("error"):tag("reservation-error", { xmlns = NS, ["error-code"] = "403" }):up()
		env.iqs[1].reject(new_error({ type = "auth", condition = "not-authorized", text = "no" }, { stanza = err_reply }))
		assert.equal("not-authorized", got.condition)
		assert.equal("reservation-error", got.extra[1].name)

		ext.forward(room, REQUEST, REQUESTER, function(r) got = r end)
		env.iqs[2].reject(new_error({ type = "wait", condition = "remote-server-timeout", text = "timeout" }))
		assert.is_false(got.ready)
		assert.is_nil(got.condition)
	end)
end)
