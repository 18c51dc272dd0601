-- tenant.lib.lua: Jitsi tenants (docs/protocol.md §2.1 "Tenants"), the one place where a client's room JID is
-- mapped to the room the module serves, as Jitsi's muc_domain_mapper maps it:
--
--   name@<prefix>.<tenant>.<base>   ->   [tenant]name@<prefix>.<base>
--
-- for every served MUC host <prefix>.<base> (conference_request_muc and _extra_mucs under the base).
--
--   local tenants = tenant.new(base, muc_hosts)   -- nil when base is nil
--   tenants.map(node, host) -> nil                        host is no tenant form of a served MUC
--                            | internal_node, internal_host  mapped
--                            | false, text                 a malformed tenant (jid-malformed)
--
-- node and host are already prepped (service.lib's check_room); a host that is itself served is
-- never mapped (the caller checks muc_hosts first). Pure string work: no Prosody library needed.

-- Jitsi's mapper takes the tenant as one host label (`([^%.]+)`) and reads it back from the node
-- with `^%[([^%]]+)%](.+)$`; the node must stay a valid JID node (RFC 7622 / nodeprep).
local MAX_TENANT = 63      -- one DNS label
local MAX_NODE = 1023      -- bytes of a JID localpart (RFC 7622 §3.3)
local REFUSED = "[%.%[%]%s%c\"&'/:<>@\\]"

local function new(base, muc_hosts)
	if not base then return nil; end
	local suffix = "." .. base;
	-- { prefix = "conference.", host = "conference.<base>" }, longest prefix first
	local mucs = {};
	for host in pairs(muc_hosts) do
		if #host > #suffix and host:sub(-#suffix) == suffix then
			mucs[#mucs + 1] = { prefix = host:sub(1, -#suffix - 1) .. ".", host = host };
		end
	end
	table.sort(mucs, function(a, b)
		if #a.prefix ~= #b.prefix then return #a.prefix > #b.prefix; end
		return a.prefix < b.prefix;
	end);

	local tenants = { base = base, hosts = {} };
	for i, m in ipairs(mucs) do tenants.hosts[i] = m.host; end

	function tenants.map(node, host)
		if #host <= #suffix or host:sub(-#suffix) ~= suffix then return nil; end
		for _, m in ipairs(mucs) do
			local p = m.prefix;
			if #host >= #p + #suffix and host:sub(1, #p) == p then
				local tenant = host:sub(#p + 1, -#suffix - 1);
				if tenant == "" then
					return false, "empty tenant in 'room'";
				end
				if #tenant > MAX_TENANT then
					return false, ("tenant in 'room' longer than %d bytes"):format(MAX_TENANT);
				end
				if tenant:find(REFUSED) then
					return false, "tenant in 'room' has a character a tenant may not have";
				end
				local internal = "[" .. tenant .. "]" .. node;
				if #internal > MAX_NODE then
					return false, "'room' too long once its tenant is mapped";
				end
				return internal, m.host;
			end
		end
		return nil;
	end

	return tenants;
end

return { new = new, MAX_TENANT = MAX_TENANT };
