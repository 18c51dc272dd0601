-- Specs of the JWT part of the binding: native.jwt_verifier / verifier:verify (native/jwt.c).
-- HS256 tokens are signed with Prosody's util.hashes; RS256/ES256 keys are generated and tokens
-- signed with the `openssl` command at test time.
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()
local hashes = require "util.hashes"
local base64 = require "util.encodings".base64
local json = require "util.json"

local NOW = 1700000000
local SECRET = "s3cret-for-specs"

local function b64url(s)
	return (base64.encode(s):gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" }))
end

local tmpdir = assert(io.popen("mktemp -d")):read("l")
local function sh(cmd)
	assert(os.execute(cmd .. " 2>/dev/null"), cmd)
end
local function slurp(path)
	local f = assert(io.open(path, "rb"))
	local s = f:read("a")
	f:close()
	return s
end
sh(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s/rsa.pem"):format(tmpdir))
sh(("openssl pkey -in %s/rsa.pem -pubout -out %s/rsa.pub"):format(tmpdir, tmpdir))
sh(("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s/ec.pem"):format(tmpdir))
sh(("openssl pkey -in %s/ec.pem -pubout -out %s/ec.pub"):format(tmpdir, tmpdir))
sh(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out %s/small.pem"):format(tmpdir))
sh(("openssl pkey -in %s/small.pem -pubout -out %s/small.pub"):format(tmpdir, tmpdir))
local RSA_PUB, EC_PUB, SMALL_PUB = slurp(tmpdir .. "/rsa.pub"), slurp(tmpdir .. "/ec.pub"), slurp(tmpdir .. "/small.pub")

-- DER ECDSA-Sig-Value → JOSE r||s (32 bytes each).
local function der_to_raw(der)
	local pos = 3 -- after SEQUENCE tag and (short) length
	local out = {}
	for _ = 1, 2 do
		assert(der:byte(pos) == 0x02)
		local len = der:byte(pos + 1)
		local int = der:sub(pos + 2, pos + 1 + len):gsub("^%z+", "")
		out[#out + 1] = ("\0"):rep(32 - #int) .. int
		pos = pos + 2 + len
	end
	return table.concat(out)
end

local function openssl_sign(keyfile, data, es)
	local input = tmpdir .. "/input"
	local f = assert(io.open(input, "wb"))
	f:write(data)
	f:close()
	local p = assert(io.popen(("openssl dgst -sha256 -binary -sign %s %s"):format(keyfile, input)))
	local sig = p:read("a")
	p:close()
	return es and der_to_raw(sig) or sig
end

-- make(header, claims, how): how = "HS256" | "RS256" | "ES256" | "none" | { secret = s }
local function make(header, claims, how)
	local input = b64url(type(header) == "string" and header or json.encode(header)) .. "."
		.. b64url(type(claims) == "string" and claims or json.encode(claims))
	local sig
	if how == "HS256" then sig = hashes.hmac_sha256(SECRET, input)
	elseif type(how) == "table" then sig = hashes.hmac_sha256(how.secret, input)
	elseif how == "RS256" then sig = openssl_sign(tmpdir .. "/rsa.pem", input)
	elseif how == "ES256" then sig = openssl_sign(tmpdir .. "/ec.pem", input, true)
	else sig = "" end
	return input .. "." .. b64url(sig)
end

local function claims(extra)
	local c = { iss = "my_app", aud = "jitsi", sub = "meet.example.com", room = "room1",
		exp = NOW + 3600, nbf = NOW - 60,
		context = { user = { id = "u1", moderator = true }, group = "g1" } }
	for k, v in pairs(extra or {}) do c[k] = v end
	return c
end

local function verifier(extra)
	local cfg = { hs256_secret = SECRET, public_keys = { rsa1 = RSA_PUB, ec1 = EC_PUB },
		issuers = { "my_app" }, audiences = { "jitsi" }, domain = "meet.example.com", leeway = 0 }
	for k, v in pairs(extra or {}) do cfg[k] = v end
	return native.jwt_verifier(cfg)
end

local function refused(text, ...)
	local r, cond, t = ...
	assert.is_nil(r)
	assert.equal("not-authorized", cond)
	assert.equal(text, t)
end

describe("native.jwt_verifier", function()
	teardown(function() os.execute("rm -rf " .. tmpdir) end)

	describe("configuration", function()
		it("accepts an empty config and every documented option", function()
			assert.truthy(native.jwt_verifier({}))
			assert.truthy(verifier({ max_token = 100, leeway = 2.5 }))
		end)

		it("raises on wrong types, unknown options and bad values", function()
			assert.has_error(function() native.jwt_verifier() end)
			assert.has_error(function() native.jwt_verifier("x") end)
			assert.has_error(function() native.jwt_verifier({ secret = "x" }) end, "unknown option 'secret'")
			assert.has_error(function() native.jwt_verifier({ hs256_secret = 5 }) end, "option 'hs256_secret' must be a string")
			assert.has_error(function() native.jwt_verifier({ hs256_secret = "" }) end,
				"option 'hs256_secret': the HS256 secret must not be empty")
			assert.has_error(function() native.jwt_verifier({ public_keys = "pem" }) end, "option 'public_keys' must be a table")
			assert.has_error(function() native.jwt_verifier({ public_keys = { RSA_PUB } }) end,
				"option 'public_keys' must map key ids (strings) to PEM text")
			assert.has_error(function() native.jwt_verifier({ public_keys = { k = "junk" } }) end,
				"option 'public_keys': key 'k': unreadable PEM public key")
			assert.has_error(function() native.jwt_verifier({ public_keys = { k = SMALL_PUB } }) end,
				"option 'public_keys': key 'k': RSA public key shorter than 2048 bits")
			assert.has_error(function() native.jwt_verifier({ issuers = "my_app" }) end, "option 'issuers' must be an array of strings")
			assert.has_error(function() native.jwt_verifier({ audiences = { 1 } }) end, "option 'audiences' must be an array of strings")
			assert.has_error(function() native.jwt_verifier({ audiences = { "" } }) end, "option 'audiences': audiences must not be empty")
			assert.has_error(function() native.jwt_verifier({ domain = true }) end, "option 'domain' must be a string")
			assert.has_error(function() native.jwt_verifier({ leeway = -1 }) end, "option 'leeway' must be a finite number >= 0")
			assert.has_error(function() native.jwt_verifier({ leeway = 0 / 0 }) end, "option 'leeway' must be a finite number >= 0")
			assert.has_error(function() native.jwt_verifier({ leeway = "5" }) end, "option 'leeway' must be a finite number >= 0")
			assert.has_error(function() native.jwt_verifier({ max_token = 0 }) end, "option 'max_token' must be a positive integer")
		end)

		it("has __tostring and __close; a closed verifier raises", function()
			local v = verifier()
			assert.equal("conference_request_native.jwt_verifier (2 public keys)", tostring(v))
			do
				local c <close> = v
				assert.truthy(c)
			end
			assert.equal("conference_request_native.jwt_verifier (closed)", tostring(v))
			assert.has_error(function() v:verify("a.b.c", "room1", NOW) end, "jwt verifier is closed")
		end)
	end)

	describe("verify", function()
		local v = verifier()

		it("returns the claims of a valid HS256, RS256 and ES256 token", function()
			local want = { alg = "HS256", iss = "my_app", sub = "meet.example.com", room = "room1",
				exp = NOW + 3600, nbf = NOW - 60, user_id = "u1", group = "g1", moderator = true }
			assert.same(want, v:verify(make({ alg = "HS256", typ = "JWT" }, claims(), "HS256"), "room1", NOW))
			want.alg, want.kid = "RS256", "rsa1"
			assert.same(want, v:verify(make({ alg = "RS256", kid = "rsa1" }, claims(), "RS256"), "room1", NOW))
			want.alg, want.kid = "ES256", "ec1"
			assert.same(want, v:verify(make({ alg = "ES256", kid = "ec1" }, claims(), "ES256"), "room1", NOW))
			assert.equal("integer", math.type(v:verify(make({ alg = "HS256" }, claims(), "HS256"), "room1", NOW).exp))
		end)

		it("keeps moderator false and accepts the string forms", function()
			local c = claims({ context = { user = { moderator = false } } })
			assert.is_false(v:verify(make({ alg = "HS256" }, c, "HS256"), "room1", NOW).moderator)
			c = claims({ context = { user = { moderator = "false" } } })
			assert.is_false(v:verify(make({ alg = "HS256" }, c, "HS256"), "room1", NOW).moderator)
			c = claims({ context = { user = { moderator = "true" } } })
			assert.is_true(v:verify(make({ alg = "HS256" }, c, "HS256"), "room1", NOW).moderator)
			c = claims({ context = { user = { id = "x" } } })
			assert.is_nil(v:verify(make({ alg = "HS256" }, c, "HS256"), "room1", NOW).moderator)
			c = claims({ context = { user = { moderator = "maybe" } } })
			refused("token claim 'context.user.moderator' is not a boolean",
				v:verify(make({ alg = "HS256" }, c, "HS256"), "room1", NOW))
		end)

		it("checks exp and nbf with the leeway", function()
			local t = make({ alg = "HS256" }, claims({ exp = NOW - 10 }), "HS256")
			refused("token expired", v:verify(t, "room1", NOW))
			assert.truthy(verifier({ leeway = 30 }):verify(t, "room1", NOW))
			t = make({ alg = "HS256" }, claims({ nbf = NOW + 10 }), "HS256")
			refused("token not valid yet", v:verify(t, "room1", NOW))
			assert.truthy(verifier({ leeway = 30 }):verify(t, "room1", NOW))
			refused("token claim 'exp' is not a number",
				v:verify(make({ alg = "HS256" }, claims({ exp = "tomorrow" }), "HS256"), "room1", NOW))
		end)

		it("checks room (case-insensitive, *), sub (*, domain, tenant), iss and aud", function()
			local t = make({ alg = "HS256" }, claims(), "HS256")
			refused("token room does not match", v:verify(t, "room2", NOW))
			assert.truthy(v:verify(t, "ROOM1", NOW))
			assert.truthy(v:verify(make({ alg = "HS256" }, claims({ room = "*" }), "HS256"), "other", NOW))
			t = make({ alg = "HS256" }, claims({ sub = "elsewhere" }), "HS256")
			refused("token subject does not match", v:verify(t, "room1", NOW))
			t = make({ alg = "HS256" }, claims({ sub = "Acme" }), "HS256")
			refused("token subject does not match", v:verify(t, "room1", NOW))
			assert.equal("Acme", v:verify(t, "room1", NOW, "acme").sub)
			refused("token subject does not match", v:verify(t, "room1", NOW, nil))
			assert.truthy(v:verify(make({ alg = "HS256" }, claims({ sub = "*" }), "HS256"), "room1", NOW, "x"))
			refused("token issuer not accepted", v:verify(make({ alg = "HS256" }, claims({ iss = "evil" }), "HS256"), "room1", NOW))
			refused("token audience not accepted", v:verify(make({ alg = "HS256" }, claims({ aud = "other" }), "HS256"), "room1", NOW))
			assert.truthy(v:verify(make({ alg = "HS256" }, claims({ aud = { "other", "jitsi" } }), "HS256"), "room1", NOW))
			local open = native.jwt_verifier({ hs256_secret = SECRET })
			assert.truthy(open:verify(make({ alg = "HS256" }, claims({ iss = "x", aud = "y", sub = "*" }), "HS256"), "room1", NOW))
		end)

		it("refuses bad signatures, alg none, unknown algorithms and kids, and key confusion", function()
			local t = make({ alg = "HS256" }, claims(), { secret = "wrong" })
			refused("token signature invalid", v:verify(t, "room1", NOW))
			t = make({ alg = "ES256", kid = "ec1" }, claims(), "ES256")
			refused("token signature invalid", v:verify(t:sub(1, -3) .. (t:sub(-2, -2) == "A" and "B" or "A") .. t:sub(-1), "room1", NOW))
			refused("token algorithm none refused", v:verify(make({ alg = "none" }, claims(), "none"), "room1", NOW))
			refused("token algorithm HS384 not supported", v:verify(make({ alg = "HS384" }, claims(), "HS256"), "room1", NOW))
			refused("token key id unknown", v:verify(make({ alg = "RS256", kid = "nope" }, claims(), "RS256"), "room1", NOW))
			refused("token key id unknown", v:verify(make({ alg = "RS256" }, claims(), "RS256"), "room1", NOW))
			-- signed with the HMAC secret, labelled RS256
			refused("token signature invalid", v:verify(make({ alg = "RS256", kid = "rsa1" }, claims(), "HS256"), "room1", NOW))
			-- HS256 with the RSA public key as the HMAC secret
			refused("token signature invalid",
				v:verify(make({ alg = "HS256", kid = "rsa1" }, claims(), { secret = RSA_PUB }), "room1", NOW))
			local pk = native.jwt_verifier({ public_keys = { rsa1 = RSA_PUB } })
			refused("token algorithm HS256 not supported",
				pk:verify(make({ alg = "HS256", kid = "rsa1" }, claims({ sub = "*" }), { secret = RSA_PUB }), "room1", NOW))
			-- the only key is used without a kid; its kind must match alg
			assert.equal("RS256", pk:verify(make({ alg = "RS256" }, claims({ sub = "*" }), "RS256"), "room1", NOW).alg)
			refused("token algorithm ES256 does not match the key",
				v:verify(make({ alg = "ES256", kid = "rsa1" }, claims(), "ES256"), "room1", NOW))
		end)

		it("refuses malformed and oversized tokens and keeps serving", function()
			local good = make({ alg = "HS256" }, claims(), "HS256")
			refused("token malformed (structure)", v:verify("", "room1", NOW))
			refused("token malformed (structure)", v:verify("abc.def", "room1", NOW))
			refused("token malformed (base64url)", v:verify("e30=." .. good:match("%.(.*)$"), "room1", NOW))
			refused("token malformed (base64url)", v:verify("!!" .. good, "room1", NOW))
			refused("token malformed (JSON header)", v:verify(make("{\"alg\":", claims(), "HS256"), "room1", NOW))
			refused("token malformed (JSON header)",
				v:verify(make('{"alg":"none","alg":"HS256"}', claims(), "HS256"), "room1", NOW))
			refused("token malformed (JSON claims)", v:verify(make({ alg = "HS256" }, "[1]", "HS256"), "room1", NOW))
			refused("token malformed (JSON claims)",
				v:verify(make({ alg = "HS256" }, '{"room":"x","room":"room1","sub":"*"}', "HS256"), "room1", NOW))
			local long = make({ alg = "HS256" }, claims({ pad = ("x"):rep(20000) }), "HS256")
			refused("token too long", v:verify(long, "room1", NOW))
			assert.truthy(verifier({ max_token = #long }):verify(long, "room1", NOW))
			refused("token too long", verifier({ max_token = #long - 1 }):verify(long, "room1", NOW))
			for _, text in ipairs({ "sekrit-tok", "eyJxyzzy", "zzz.yyy.xxx" }) do
				local _, _, t = v:verify(text, "room1", NOW)
				assert.is_nil(t:find(text, 1, true))
			end
			assert.truthy(v:verify(good, "room1", NOW))
		end)

		it("raises on wrong argument types", function()
			local t = make({ alg = "HS256" }, claims(), "HS256")
			assert.has_error(function() v:verify(nil, "room1", NOW) end)
			assert.has_error(function() v:verify(42, "room1", NOW) end)
			assert.has_error(function() v:verify(t, nil, NOW) end)
			assert.has_error(function() v:verify(t, { "room1" }, NOW) end)
			assert.has_error(function() v:verify(t, "room1") end)
			assert.has_error(function() v:verify(t, "room1", tostring(NOW)) end)
			assert.has_error(function() v:verify(t, "room1", 0 / 0) end)
			assert.has_error(function() v:verify(t, "room1", math.huge) end)
			assert.has_error(function() v:verify(t, "room1", NOW, 5) end)
			assert.has_error(function() v.verify({}, t, "room1", NOW) end)
			assert.has_error(function() v.verify(native.registry(), t, "room1", NOW) end)
			assert.truthy(v:verify(t, "room1", NOW, nil))
		end)
	end)
end)
