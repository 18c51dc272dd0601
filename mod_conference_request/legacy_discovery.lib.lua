-- legacy_discovery.lib.lua: how old clients find the service and its rooms (docs/protocol.md §7 "Discovery",
-- issue 13 item 3), wired from legacy.lib:
--   * the MUC host's disco#info lists jabber:iq:conference and jabber:iq:browse (features added
--     to mod_muc's own module items, so mod_disco on the MUC host serves them; removed on stop);
--   * `jabber:iq:browse` get to the MUC host: the rooms as conference-0.4 listed them,
--     <conference type='public' jid=… name='<name> (<occupants>)'/>, hidden rooms only to their
--     occupants (as type='private');
--   * a room created through a legacy set (or a groupchat 1.0 join) is public unless the MUC
--     host's configuration sets muc_room_default_public itself.

local st = require "util.stanza";
local jid_util = require "util.jid";

local NS = "jabber:iq:conference";
local NS_BROWSE = "jabber:iq:browse";
local FEATURES = { NS, NS_BROWSE };

-- muc_host: the MUC component; muc_api(): mod_muc's environment or nil; states: legacy.lib's
-- room jid → state table (state.creating is set while a legacy set creates the room);
-- error_reply(stanza, condition, text): an error with the legacy code.
local function new(muc_host, muc_api, states, error_reply)
	local ctx = module:context(muc_host);
	local added_to; -- mod_muc's module object that holds our features

	local function add_features()
		local muc = muc_api();
		local api = muc and muc.module;
		if not api or added_to == api then return; end
		for _, feature in ipairs(FEATURES) do api:add_feature(feature); end
		added_to = api;
	end

	local function remove_features()
		if not added_to then return; end
		for _, feature in ipairs(FEATURES) do added_to:remove_item("feature", feature); end
		added_to = nil;
	end

	local function room_name(room)
		local name = room:get_name();
		if not name or name == "" then name = jid_util.node(room.jid); end
		return name;
	end

	local function occupant_count(room)
		local n = 0;
		for _ in room:each_occupant() do n = n + 1; end
		return n;
	end

	-- jabber:iq:browse get to the MUC host itself
	local function browse_service(origin, stanza)
		local muc = muc_api();
		if not muc then
			return origin.send(error_reply(stanza, "service-unavailable", "the MUC service is not available"));
		end
		local from = stanza.attr.from;
		local reply = st.reply(stanza):tag("conference", { xmlns = NS_BROWSE, type = "public",
			name = ctx:get_option_string("name", "Prosody Chatrooms") });
		for room in muc.each_room() do -- live and persistent rooms, as mod_muc's disco#items
			local public = room:get_public();
			if (public or room:get_occupant_jid(from)) and not room._data.destroyed then
				reply:tag("conference", { jid = room.jid, type = public and "public" or "private",
					name = ("%s (%d)"):format(room_name(room), occupant_count(room)) }):up();
			end
		end
		origin.send(reply);
	end

	local function on_iq_host(event)
		local origin, stanza = event.origin, event.stanza;
		local payload = stanza.tags[1];
		if stanza.attr.type ~= "get" or not payload or payload.attr.xmlns ~= NS_BROWSE then return; end
		local ok, err = pcall(browse_service, origin, stanza);
		if not ok then
			module:log("error", "legacy: browse of %s failed: %s", muc_host, tostring(err));
			origin.send(error_reply(stanza, "internal-server-error", "could not list the rooms"));
		end
		return true;
	end

	-- Rooms made by old clients are public, as the old servers' rooms were browseable, unless the
	-- administrator chose a default for the MUC host.
	local explicit_default = ctx:get_option("muc_room_default_public") ~= nil;
	local gc1_creations = setmetatable({}, { __mode = "k" }); -- presence stanzas of gc1 joins
	local function on_room_pre_create(event)
		if explicit_default then return; end
		local room = event.room;
		local s = states[room.jid];
		if (s and s.creating) or (event.stanza and gc1_creations[event.stanza]) then
			room:set_public(true);
		end
	end

	local function hook()
		ctx:hook("iq/host", on_iq_host, 10);
		ctx:hook("muc-room-pre-create", on_room_pre_create, 0); -- after mod_muc's defaults (1)
		ctx:hook("module-loaded", function(event)
			if event.module == "muc" then add_features(); end
		end);
		add_features();
	end

	return {
		hook = hook, stop = remove_features,
		-- legacy_gc1.lib marks the presence of a join that may create the room
		mark_creation = function(stanza) gc1_creations[stanza] = true; end,
	};
end

return { new = new };
