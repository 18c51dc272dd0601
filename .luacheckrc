-- luacheck configuration (Debian's lua-check 1.1): Lua 5.4, Prosody plugin globals.
std = "lua54"
max_line_length = 150
-- generated Prosody configs and server data of test runs and `make run`
exclude_files = { "tests/integration/.work/**", "run/**", "build/**", "build-asan/**" }

files["mod_conference_request/"] = {
	globals = { "module.unload", "module.save", "module.restore" },
	read_globals = { "module", "prosody" },
}

files["mod_conference_request_s2sout/"] = {
	globals = { "module.unload" },
	read_globals = { "module" },
}

files["spec/"] = {
	std = "+busted",
}
