-- legacy_outsiders.lib.lua: what the legacy door remembers of presence sent to a bare room by
-- somebody who is not in it (jabberd's "availability tracker", docs/protocol.md §7): when that JID later enters
-- the room with a legacy set, its MUC join carries the remembered <show/> and <status/>.
--
-- Anyone may send such presence (an anonymous guest, a remote server), so what is kept is small
-- and bounded:
--   * per entry a summary, never the stanza: the first <show/> if it is one of away/chat/dnd/xa,
--     the first <status/>'s text cut to conference_request_legacy_max_status bytes (at a UTF-8
--     character boundary); a presence with neither keeps nothing;
--   * at most conference_request_legacy_max_outsiders entries (least recently set go first);
--   * at most conference_request_legacy_outsiders_budget bytes in all, counting each entry's key
--     (sender's full JID + room JID), its strings and a fixed overhead for its tables;
--   * the entries of a local client session go when the session ends (resource-unbind), besides
--     the unavailable presence Prosody sends to the rooms of a client's directed presence.

local cache = require "util.cache";

local SHOWS = { away = true, chat = true, dnd = true, xa = true };
-- Bytes an entry costs beyond its strings (its table, the cache node, the set slot): an estimate
-- that keeps the byte budget honest for entries with short strings.
local OVERHEAD = 160;

-- The longest prefix of `s` of at most `max` bytes that does not split a UTF-8 character.
local function truncate(s, max)
	if #s <= max then return s; end
	local cut = max;
	while cut > 0 and ((s:byte(cut + 1) or 0) & 0xC0) == 0x80 do cut = cut - 1; end
	return s:sub(1, cut);
end

-- opts: max_outsiders (entries), outsiders_budget (bytes), max_status (bytes).
local function new(opts)
	local budget, max_status = opts.outsiders_budget, opts.max_status;
	local total = 0;
	local by_session = setmetatable({}, { __mode = "k" }); -- c2s session -> { [key] = true }
	local unbind_hooked = {};                              -- user host -> true once hooked

	local function release(key, e)
		total = total - e.cost;
		local owner = e.owner;
		if owner then
			e.owner = nil;
			local set = by_session[owner];
			if set then
				set[key] = nil;
				if next(set) == nil then by_session[owner] = nil; end
			end
		end
	end

	-- util.cache evicts the least recently set entry past max_outsiders; on_evict keeps the books.
	local entries = cache.new(opts.max_outsiders, function(key, e) release(key, e); end);

	local function drop(key)
		local e = entries:get(key);
		if e then
			entries:set(key, nil);
			release(key, e);
		end
	end

	local function on_unbind(event)
		local session = event.session;
		local set = by_session[session];
		if not set then return; end
		by_session[session] = nil;
		for key in pairs(set) do
			local e = entries:get(key);
			if e and e.owner == session then
				e.owner = nil;
				drop(key);
			end
		end
	end

	local function own(origin, key, e)
		if not (origin and origin.type == "c2s" and origin.host and prosody.hosts[origin.host]) then return; end
		if not unbind_hooked[origin.host] then
			unbind_hooked[origin.host] = true;
			module:context(origin.host):hook("resource-unbind", on_unbind);
		end
		local set = by_session[origin];
		if not set then set = {}; by_session[origin] = set; end
		set[key] = true;
		e.owner = origin;
	end

	local outsiders = {};

	-- An available presence from `from` (full JID) to the bare room `room_jid`.
	function outsiders.remember(origin, from, room_jid, stanza)
		local key = from .. "\0" .. room_jid;
		drop(key);
		local show, status;
		for _, tag in ipairs(stanza.tags) do
			local ns = tag.attr.xmlns;
			if ns == nil or ns == "jabber:client" then
				if tag.name == "show" and show == nil then
					local text = tag:get_text();
					show = SHOWS[text] and text or false;
				elseif tag.name == "status" and status == nil then
					status = max_status > 0 and truncate(tag:get_text() or "", max_status) or false;
				end
				if show ~= nil and status ~= nil then break; end
			end
		end
		if not show then show = nil; end
		if not status or status == "" then status = nil; end
		if not show and not status then return; end
		local e = { show = show, status = status, cost = #key + #(show or "") + #(status or "") + OVERHEAD };
		if e.cost > budget then return; end
		entries:set(key, e);
		total = total + e.cost;
		own(origin, key, e);
		while total > budget do
			local k, v = entries:tail();
			if not k or k == key then break; end
			entries:set(k, nil);
			release(k, v);
		end
	end

	-- The remembered summary { show = s|nil, status = s|nil } or nil.
	function outsiders.get(from, room_jid)
		return entries:get(from .. "\0" .. room_jid);
	end

	function outsiders.forget(from, room_jid)
		drop(from .. "\0" .. room_jid);
	end

	-- Entries and the bytes they are counted for (operators, tests).
	function outsiders.stats()
		return entries:count(), total;
	end

	function outsiders.clear()
		entries:clear();
		total = 0;
		for s in pairs(by_session) do by_session[s] = nil; end
	end

	return outsiders;
end

return { new = new, truncate = truncate };
