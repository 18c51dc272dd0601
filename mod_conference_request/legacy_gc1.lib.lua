-- legacy_gc1.lib.lua: groupchat 1.0 joins (docs/protocol.md §7 "Groupchat 1.0", issue 13 item 4), wired from
-- legacy.lib when conference_request_legacy_gc1 is on.
--
-- Prosody 0.12's MUC refuses an available presence to room/nick without the MUC <x/> from a
-- non-occupant (muc.lib.lua room_mt:handle_normal_presence: item-not-found "You are not currently
-- connected to this chat"; mod_muc.lua only creates a room for a presence carrying the <x/>). A
-- groupchat 1.0 client never sends that <x/>, so such a presence is marked as a join here, on the
-- MUC host's presence/full before mod_muc (-2) sees it: the empty <x xmlns='…/muc'/> is added and
-- mod_muc's own join runs unchanged (creation rules, locking, passwords, bans, members-only, nick
-- conflicts, limits all stay Prosody's; a password-protected room refuses the join with
-- not-authorized, as groupchat 1.0 cannot carry a password). Presence from occupants (updates,
-- nick changes, leaving) is left alone. The errors mod_muc answers such a join with carry the
-- legacy `code` attribute (409 for a nick in use), which gc1 clients display.

local jid_util = require "util.jid";

local jid_bare, jid_resource = jid_util.bare, jid_util.resource;

local NS_MUC = "http://jabber.org/protocol/muc";

-- muc_host; muc_api(): mod_muc's environment or nil; code_of(condition): the legacy code or nil;
-- mark_creation(stanza): legacy_discovery.lib's note that this presence may create a room.
local function new(muc_host, muc_api, code_of, mark_creation)
	local ctx = module:context(muc_host);
	local measure_join = module:measure("legacy_gc1_join", "rate");

	-- The session as mod_muc sees it for this join: error answers to it get the legacy code.
	local function coding(origin, stanza)
		local proxy = setmetatable({}, { __index = origin });
		function proxy.send(out)
			if out.name == "presence" and out.attr.type == "error" and out.attr.to == stanza.attr.from then
				local e = out:get_child("error");
				if e and not e.attr.code then
					local _, condition = out:get_error();
					e.attr.code = code_of(condition);
				end
			end
			return origin.send(out);
		end
		return proxy;
	end

	local function on_presence_full(event)
		local stanza = event.stanza;
		if stanza.attr.type ~= nil or stanza:get_child("x", NS_MUC) then return; end
		local to, from = stanza.attr.to, stanza.attr.from;
		if not from or not jid_resource(to) then return; end
		local muc = muc_api();
		if not muc then return; end
		local room = muc.get_room_from_jid(jid_bare(to));
		if room == false then return; end -- mod_muc answers resource-constraint
		if room and room:get_occupant_jid(from) then return; end -- an occupant: presence update or nick change
		stanza:tag("x", { xmlns = NS_MUC }):up();
		if room == nil then mark_creation(stanza); end
		event.origin = coding(event.origin, stanza);
		measure_join();
		module:log("debug", "legacy: groupchat 1.0 join of %s to %s", from, to);
	end

	local function hook()
		ctx:hook("presence/full", on_presence_full, 5); -- after legacy.lib's id addressing (10)
	end

	return { hook = hook };
end

return { new = new };
