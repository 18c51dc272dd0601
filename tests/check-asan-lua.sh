#!/usr/bin/env bash
# tests/check-asan-lua.sh SO — the busted specs of the binding (spec/native*_spec.lua)
#   1. against SO, an ASan/UBSan build (make check-asan builds build-asan/conference_request_native.so),
#      run by lua5.4 with libasan preloaded; leak detection stays on (busted closes the Lua state
#      on exit, so whatever is still allocated at exit is a real leak);
#   2. against the normal build under valgrind --leak-check=full --error-exitcode=1.
# Prosody's util.encodings (loaded by util.stanza) keeps ICU objects for the life of the process;
# those, and only those, are suppressed (by the ICU libraries' names: our code never calls ICU).
# ICU is preloaded so that its frames stay symbolized after Lua dlcloses util/encodings.so.
# Prints "busted: N passed, N failed" for each run; exits non-zero when either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
so=${1:?usage: tests/check-asan-lua.sh path/to/conference_request_native.so}
[ -f "$so" ] || { echo "no such file: $so" >&2; exit 2; }
so_dir=$(cd "$(dirname "$so")" && pwd)
normal_dir=mod_conference_request
specs=$(ls spec/native*_spec.lua)
status=0

run_busted() {  # runner prefix..., then the specs run with the binding from $CR_DIR
    "$@" lua5.4 /usr/bin/busted --lpath="/usr/lib/prosody/?.lua;./mod_conference_request/?.lua" \
        --cpath="$CR_DIR/?.so;/usr/lib/prosody/?.so" -o TAP $specs
}

summarize() {  # file rc
    local ok notok
    ok=$(grep -cE '^ok [0-9]+' "$1")
    notok=$(grep -cE '^not ok [0-9]+' "$1")
    if [ "$2" != 0 ] && [ "$notok" = 0 ]; then notok=1; fi
    echo "busted: $ok passed, $notok failed"
    [ "$2" = 0 ] && [ "$notok" = 0 ]
}

out=$(mktemp)
supp=$(mktemp -d)
trap 'rm -rf "$out" "$supp"' EXIT
printf 'leak:libicuuc.so\nleak:libicui18n.so\n' >"$supp/lsan.supp"
cat >"$supp/valgrind.supp" <<'SUPP'
{
   prosody-util-encodings-icu
   Memcheck:Leak
   match-leak-kinds: definite,possible
   ...
   fun:luaopen_util_encodings
}
{
   icu-uc
   Memcheck:Leak
   match-leak-kinds: definite,possible
   ...
   obj:*/libicuuc.so*
}
SUPP
icu=""
for lib in libicuuc.so.72 libicui18n.so.72; do
    p=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
    [ -n "$p" ] && icu="$icu $p"
done

echo "==> binding specs under ASan/UBSan ($so)"
libasan=$(gcc -print-file-name=libasan.so)
CR_DIR=$so_dir LD_PRELOAD="$libasan$icu" \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=23 \
    LSAN_OPTIONS=suppressions=$supp/lsan.supp:print_suppressions=0 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_busted env 2>&1 | tee "$out"
summarize "$out" "${PIPESTATUS[0]}" || status=1
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out"; then
    echo "sanitizer reported errors"; status=1
fi

if [ -f "$normal_dir/conference_request_native.so" ]; then
    echo "==> binding specs under valgrind ($normal_dir/conference_request_native.so)"
    CR_DIR=$normal_dir run_busted valgrind -q --error-exitcode=1 --leak-check=full \
        --errors-for-leak-kinds=definite,possible --keep-debuginfo=yes \
        --suppressions="$supp/valgrind.supp" 2>&1 | tee "$out"
    summarize "$out" "${PIPESTATUS[0]}" || status=1
else
    echo "no normal build at $normal_dir (run make first)"; status=1
fi
exit $status
