-- mod_conference_request: answers Jitsi conference requests inside Prosody (docs/protocol.md §1-§4, §8).
--
--   Component "conference.example.com" "muc"
--   Component "focus.example.com" "conference_request"
--       conference_request_muc = "conference.example.com"
--
-- This file only wires things: options (config.lib), the native core, the doors (xmpp.lib,
-- http.lib), the request flow (service.lib), the built-in focus and MUC tracking (focus.lib) or
-- the external focus (external_focus.lib, when conference_request_focus is set), owner rights
-- granted by the built-in focus (moderation.lib), rate limits (ratelimit.lib), visitor nodes
-- (visitors.lib), reports between visitor nodes and the main server (vnode_role.lib on a node,
-- vnode_main.lib on the main server), metrics (metrics.lib) and operator commands (shell.lib).

local st = require "util.stanza";

local cfg = module:require "config".read();
-- Legacy options are checked now, before anything is hooked or served (a failed load leaves hooks).
local legacy_lib = cfg.legacy and module:require "legacy" or nil;
local legacy_opts = legacy_lib and legacy_lib.read_options() or nil;

-- The native binding lives next to this file; make it findable once.
do
	local dir = module:get_directory();
	local entry = dir .. "/?.so";
	if not package.cpath:find(entry, 1, true) then
		package.cpath = entry .. ";" .. package.cpath;
	end
end
local native = require "conference_request_native";

local codec_config = {
	sip_gateway = cfg.sip_gateway,
	extra_properties = cfg.extra_properties,
	stanza_mt = st.stanza_mt,
};
for k, v in pairs(cfg.limits) do codec_config[k] = v; end
-- Authentication (docs/protocol.md §5, auth.lib): who may create; authentication/externalAuth in the answers.
local auth = module:require "auth".new(cfg.auth, native);
auth.codec_config(codec_config);
local codec = native.codec(codec_config);
local registry = native.registry({
	max_rooms = cfg.max_rooms,
	max_waiters_per_room = cfg.max_waiters_per_room,
	max_waiters = cfg.max_waiters,
});

local metrics = module:require "metrics".new(registry);
local focus, moderation;
if cfg.focus then -- external focus, e.g. jicofo (docs/protocol.md §4.3, external_focus.lib)
	focus = module:require "external_focus".new(cfg, registry, metrics, native.conditions);
else
	focus = module:require "focus".new(cfg, registry, metrics);
	-- owner rights in the rooms the built-in focus serves (docs/protocol.md §4.2)
	moderation = module:require "moderation".new(cfg, auth);
	-- an occupant already in the room that becomes authenticated is made owner then (jicofo)
	auth.on_authenticated = moderation.authenticated;
end
local ratelimit = module:require "ratelimit".new(cfg, metrics);
-- Visitors (docs/protocol.md §6, visitors.lib): live queue and redirects to visitor nodes, when enabled.
local visitors;
if cfg.visitors and cfg.visitors.enabled then
	visitors = module:require "visitors".new(cfg.visitors, { native = native, forward = focus.forward,
		main_muc = cfg.muc, focus = cfg.focus, focus_jid = cfg.focus_jid, max_rooms = cfg.max_rooms });
end
-- Reports from visitor nodes (docs/protocol.md §6.2, vnode_main.lib): node health and loads, built-in focus only.
local vnode_main;
if visitors and visitors.node_set() then
	local reporting = false;
	for _, n in ipairs(cfg.visitors.nodes) do reporting = reporting or n.reports; end
	if reporting then
		vnode_main = module:require "vnode_main".new(cfg.visitors, visitors, { main_muc = cfg.muc });
		visitors.health = vnode_main;
	end
end
-- A visitor node reports its visitors to the main server (vnode_role.lib).
local reporter = cfg.role == "visitor_node" and module:require "vnode_role".new(cfg) or nil;
local service = module:require "service".new(cfg, focus, metrics, registry, ratelimit, auth, visitors);
module:require "xmpp".new(native, codec, service);
if cfg.http then
	module:require "http".new(cfg, native, codec, service, metrics, registry, focus, visitors, reporter);
end
local shell = module:require "shell".new(focus, registry, metrics, visitors);
-- Legacy jabber:iq:conference on the MUC host (docs/protocol.md §7, legacy.lib), unless turned off.
local legacy = legacy_lib and legacy_lib.new(cfg.muc, native, legacy_opts) or nil;

focus.start();
if visitors then visitors.start(); end
if vnode_main then vnode_main.start(); end
if reporter then reporter.start(); end
if moderation then moderation.start(); end

module:log("info", "serving conference requests for %s%s (%s focus, focusjid %s)%s", cfg.muc,
	#cfg.extra_mucs > 0 and (" and " .. table.concat(cfg.extra_mucs, ", ")) or "",
	cfg.focus and "external" or "built-in", cfg.focus or cfg.focus_jid,
	cfg.http and ", HTTP door on" or "");

function module.save()
	return { unjoined = focus.save(), auth = auth.save(), visitors = visitors and visitors.save(),
		vnode_main = vnode_main and vnode_main.save() };
end

function module.restore(state)
	focus.restore(state and state.unjoined);
	auth.restore(state and state.auth);
	if visitors then visitors.restore(state and state.visitors); end
	if vnode_main then vnode_main.restore(state and state.vnode_main); end
end

function module.unload()
	focus.stop();
	auth.stop();
	shell.stop();
	if vnode_main then vnode_main.stop(); end
	if reporter then reporter.stop(); end
	if legacy then legacy.stop(); end
end
