# mod_conference_request — build, run, test.
#
#   make            build the native library and its Lua binding
#   make run        install what is missing, build, start a demo Prosody on loopback
#   make test       install what is missing, build, run every test
#   make check-asan the C tests and the binding specs under ASan + UBSan
#   make bench      benchmarks (tests/bench/), not part of `make test`; ends with the doors' verdict:
#                   wall-clock and instruction ratios (runs tests/bench/profile.sh; BENCH_PROFILE=0 skips it)
#   make bench-profile  Prosody's instructions per request under callgrind (tests/bench/profile.sh)
#   make bench-jwt  cost of one JWT verification per algorithm in the C core (tests/bench/jwtbench.c)
#   make lint       luacheck
#   make install    the module directory (Lua files + .so) into $(DESTDIR)$(PLUGINDIR) (README "Install")
#   make uninstall  removes what `make install` put there
#   make fuzz       libFuzzer harnesses tests/fuzz/fuzz_*.c, FUZZ_SECONDS (60) each (tests/fuzz/README.md)
#   make clean

CC       ?= cc
CSTD      = -std=c11
WARN      = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes
OPT      ?= -O2 -g
PKGS      = expat jansson libcrypto
DEPS_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEPS_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lexpat -ljansson -lcrypto)
DEPS_LIBS   += -lm   # log() in native/vnodes.c
LUA_CFLAGS  := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
CPPFLAGS += -D_POSIX_C_SOURCE=200809L
CFLAGS   += $(CSTD) $(WARN) $(OPT) -fPIC $(DEPS_CFLAGS)

BUILD     = build
CORE_SRC  = $(filter-out native/lua_native.c,$(wildcard native/*.c))
CORE_OBJ  = $(CORE_SRC:native/%.c=$(BUILD)/%.o)
CORE_LIB  = $(BUILD)/libcr.a
SO        = mod_conference_request/conference_request_native.so

# `make install`: mod_conference_request/ (its Lua files and the .so together) into a directory on
# Prosody's plugin_paths. The rockspec's make build passes PLUGINDIR=$(LUADIR) of the LuaRocks tree.
PREFIX    ?= /usr/local
PLUGINDIR ?= $(PREFIX)/lib/prosody/modules
MOD_DIR   = $(DESTDIR)$(PLUGINDIR)/mod_conference_request
MOD_LUA   = $(wildcard mod_conference_request/*.lua)
# the global plugin that steers outgoing s2s to fixed addresses (README "Visitor servers"), its own
# plugin directory beside the module's
S2SOUT_DIR = $(DESTDIR)$(PLUGINDIR)/mod_conference_request_s2sout
S2SOUT_LUA = mod_conference_request_s2sout/mod_conference_request_s2sout.lua

CTEST_SRC = $(wildcard tests/c/test_*.c)
CTEST_BIN = $(CTEST_SRC:tests/c/%.c=$(BUILD)/tests/%)

# Debian packages this project needs (build, run, test). `make deps` installs the missing ones.
APT_PACKAGES = gcc make pkg-config libexpat1-dev libjansson-dev lua5.4 liblua5.4-dev prosody \
               lua-busted lua-check python3-slixmpp python3-pytest curl valgrind wrk \
               libssl-dev openssl clang libclang-rt-14-dev luarocks
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all install uninstall deps run test test-c test-lua test-integration check-asan asan-run bench bench-profile bench-jwt lint clean clean-build \
        fuzz fuzz-build
.DELETE_ON_ERROR:

all: $(SO) $(CORE_LIB)

$(BUILD)/%.o: native/%.c native/cr.h | $(BUILD)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/lua_native.o: native/lua_native.c native/cr.h | $(BUILD)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LUA_CFLAGS) -c -o $@ $<

$(CORE_LIB): $(CORE_OBJ)
	$(AR) rcs $@ $^

# Not linked against liblua: the lua5.4 interpreter Prosody runs in exports the API.
$(SO): $(BUILD)/lua_native.o $(CORE_LIB)
	$(CC) -shared $(LDFLAGS) -o $@ $(BUILD)/lua_native.o $(CORE_LIB) $(DEPS_LIBS)

$(BUILD)/tests/%: tests/c/%.c tests/c/ctest.h $(CORE_LIB) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -Inative $(LDFLAGS) -o $@ $< $(CORE_LIB) $(DEPS_LIBS)

$(BUILD) $(BUILD)/tests:
	mkdir -p $@

# The binding under a failing Lua allocator: the only test linked with liblua.
LUA_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
$(BUILD)/tests/test_binding_oom: tests/c/test_binding_oom.c tests/c/ctest.h $(BUILD)/lua_native.o $(CORE_LIB) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LUA_CFLAGS) -Inative $(LDFLAGS) -o $@ $< $(BUILD)/lua_native.o $(CORE_LIB) $(DEPS_LIBS) $(LUA_LIBS)

# The corpus replay test runs the fuzz invariants (tests/fuzz/fuzz_check.h) in the normal build.
$(BUILD)/tests/test_corpus: tests/fuzz/fuzz_check.h

# ---- fuzzing: clang + libFuzzer, ASan + UBSan, in its own build dir (tests/fuzz/README.md) ------
# Every tests/fuzz/fuzz_<target>.c is a target: it defines LLVMFuzzerTestOneInput and links the
# core library; its seeds are tests/fuzz/corpus/<target>/.
FUZZ_CC      ?= clang
FUZZ_BUILD    = build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   = $(CSTD) $(WARN) -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) $(DEPS_CFLAGS)
FUZZ_SRC      = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN      = $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_CORE_OBJ = $(CORE_SRC:native/%.c=$(FUZZ_BUILD)/core/%.o)

$(FUZZ_BUILD)/core/%.o: native/%.c native/cr.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/libcr.a: $(FUZZ_CORE_OBJ)
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_check.h $(FUZZ_BUILD)/libcr.a
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Inative -o $@ $< $(FUZZ_BUILD)/libcr.a $(DEPS_LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: deps $(FUZZ_BIN)
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_WORK=$(FUZZ_BUILD) tests/fuzz/run.sh $(FUZZ_BIN)

install: all
	install -d '$(MOD_DIR)'
	install -m 644 $(MOD_LUA) '$(MOD_DIR)/'
	install -m 755 $(SO) '$(MOD_DIR)/'
	install -d '$(S2SOUT_DIR)'
	install -m 644 $(S2SOUT_LUA) '$(S2SOUT_DIR)/'

uninstall:
	rm -f $(foreach f,$(notdir $(MOD_LUA) $(SO)),'$(MOD_DIR)/$(f)')
	-rmdir '$(MOD_DIR)' 2>/dev/null
	rm -f '$(S2SOUT_DIR)/$(notdir $(S2SOUT_LUA))'
	-rmdir '$(S2SOUT_DIR)' 2>/dev/null

deps:
	@missing=$$(for p in $(APT_PACKAGES) $(EXTRA_APT); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

run: deps all
	tests/server/run.sh

test: deps all $(CTEST_BIN)
	tests/run-all.sh

test-c: all $(CTEST_BIN)
	tests/c/run.sh $(CTEST_BIN)

test-lua: all
	tests/run-busted.sh

test-integration: all
	tests/integration/run.sh

check-asan:
	$(MAKE) --no-print-directory clean-build
	$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=address,undefined" SO=build-asan/conference_request_native.so asan-run

asan-run: $(SO) $(CTEST_BIN)
	tests/c/run.sh $(CTEST_BIN)
	tests/check-asan-lua.sh $(SO)

bench: deps all
	tests/bench/run.sh

bench-profile: deps all
	tests/bench/profile.sh

$(BUILD)/bench/jwtbench: tests/bench/jwtbench.c tests/c/jwt_keys.h tests/c/jwt_sign.h $(CORE_LIB)
	mkdir -p $(BUILD)/bench
	$(CC) $(CPPFLAGS) $(CFLAGS) -Inative $(LDFLAGS) -o $@ $< $(CORE_LIB) $(DEPS_LIBS)

bench-jwt: all $(BUILD)/bench/jwtbench
	$(BUILD)/bench/jwtbench $(JWTBENCH_ARGS)

lint:
	luacheck -q mod_conference_request mod_conference_request_s2sout spec tests

clean-build:
	rm -rf build-asan

clean:
	rm -rf $(BUILD) build-asan build-fuzz run $(SO)
