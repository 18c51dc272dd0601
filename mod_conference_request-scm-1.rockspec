-- LuaRocks build of the Prosody module (README "Install"). `luarocks --lua-version 5.4 make` in a
-- checkout builds native/*.c with the project's Makefile and installs mod_conference_request/
-- (its Lua files and conference_request_native.so together) into the tree's share/lua/5.4/, where
-- Prosody finds it when the tree is on plugin_paths (prosodyctl install's tree is).
rockspec_format = "3.0"
package = "mod_conference_request"
version = "scm-1"
source = {
	url = "git+file://./",
}
description = {
	summary = "Prosody 0.12 module answering Jitsi conference requests (XMPP IQ and HTTP) and legacy jabber:iq:conference",
	detailed = [[
Answers <conference xmlns='http://jitsi.org/protocol/focus'/> IQs and POST /conference-request/v1
on a Prosody component, with a native C core (expat, jansson, libcrypto).
]],
	labels = { "prosody", "xmpp", "jitsi" },
}
supported_platforms = { "linux" }
dependencies = {
	"lua >= 5.4, < 5.5",
}
external_dependencies = {
	EXPAT = { header = "expat.h" },
	JANSSON = { header = "jansson.h" },
	OPENSSL = { header = "openssl/evp.h" },
}
build = {
	type = "make",
	-- The Makefile keeps its own warning flags (-std=c11 -Werror …); LuaRocks' CFLAGS go to OPT.
	build_target = "all",
	build_variables = {
		OPT = "$(CFLAGS)",
		LUA_CFLAGS = "-I$(LUA_INCDIR)",
	},
	install_target = "install",
	install_variables = {
		PLUGINDIR = "$(LUADIR)",
	},
}
