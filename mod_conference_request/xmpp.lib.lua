-- xmpp.lib.lua: the XMPP door (docs/protocol.md §2): <conference xmlns='http://jitsi.org/protocol/focus'/> in
-- an IQ set to the module's host. Every IQ gets exactly one reply; every error carries <text>.

local st = require "util.stanza";

local NS = "http://jitsi.org/protocol/focus";

local function new(native, codec, service)
	local conditions = native.conditions;

	local function error_reply(stanza, condition, text)
		local c = conditions[condition];
		return st.error_reply(stanza, c and c.type or "cancel", condition, text or condition, module.host);
	end

	-- The general path. requester: given when the fast path below has applied the rate limit.
	local function on_set(event, requester)
		local origin, stanza = event.origin, event.stanza;
		local function respond(result)
			local reply;
			if result.condition then
				reply = error_reply(stanza, result.condition, result.text);
				-- <session-invalid/> (auth.lib) or the focus's own children (external_focus.lib)
				if result.extra then
					for _, child in ipairs(result.extra) do reply:add_child(st.clone(child)); end
				elseif result.session_invalid then
					reply:tag("session-invalid", { xmlns = NS }):up();
				end
			else
				local ok, element = pcall(codec.render_stanza, codec, result);
				if ok then
					reply = st.reply(stanza):add_child(element);
				else
					module:log("error", "rendering the answer for %s failed: %s", tostring(result.room), tostring(element));
					reply = error_reply(stanza, "internal-server-error", "could not render the answer");
				end
			end
			origin.send(reply);
		end
		if not requester then
			requester = { door = "xmpp", jid = stanza.attr.from, origin = origin };
			local limited = service.limit_request(requester); -- before any work (ratelimit.lib)
			if limited then
				service.rejected("xmpp", limited.condition);
				origin.send(error_reply(stanza, limited.condition, limited.text));
				return true;
			end
		end
		-- Prosody's stream parser has parsed the payload already: the binding reads the element
		-- tree with parse_xml's rules, without serializing it for a second parse.
		local ok, request, condition, text = pcall(codec.parse_stanza, codec, stanza.tags[1]);
		if not ok then
			module:log("error", "parse_stanza raised: %s", tostring(request));
			request, condition, text = nil, "internal-server-error", "could not parse the request";
		end
		if not request then
			service.rejected("xmpp", condition);
			module:log("debug", "xmpp request from %s refused: %s (%s)", stanza.attr.from or "?", condition, text or "");
			origin.send(error_reply(stanza, condition, text));
			return true;
		end
		service.handle(request, requester, respond);
		return true;
	end

	-- The fast path (issue 15; service.fast says when it applies): the rate limit as on_set applies
	-- it, then one native call reads the element, looks its room up and renders the ready answer;
	-- no request, requester (unless limits are on), answer or closure table. Anything the call
	-- does not answer goes on through on_set; the reply is the general path's, byte for byte
	-- (spec/native_fastpath_spec.lua compares them).
	local handler = on_set;
	local fast = service.fast;
	if fast then
		local fast_registry, fast_focus_jid, fast_answered = fast.registry, fast.focus_jid, fast.answered;
		local limits_on = service.limits_requests;
		handler = function(event)
			local origin, stanza = event.origin, event.stanza;
			local requester;
			if limits_on then
				requester = { door = "xmpp", jid = stanza.attr.from, origin = origin };
				local limited = service.limit_request(requester);
				if limited then
					service.rejected("xmpp", limited.condition);
					origin.send(error_reply(stanza, limited.condition, limited.text));
					return true;
				end
			end
			local ok, element, room = pcall(codec.ready_stanza, codec, stanza.tags[1], fast_registry, fast_focus_jid);
			if ok and element then
				fast_answered("xmpp", stanza.attr.from, room);
				origin.send(st.reply(stanza):add_child(element));
				return true;
			end
			return on_set(event, requester);
		end
	end

	local function on_get(event)
		service.rejected("xmpp", "bad-request");
		event.origin.send(error_reply(event.stanza, "bad-request", "a conference request must be an IQ of type 'set'"));
		return true;
	end

	module:hook("iq-set/host/" .. NS .. ":conference", handler);
	module:hook("iq-get/host/" .. NS .. ":conference", on_get);

	return { NS = NS };
end

return { new = new };
