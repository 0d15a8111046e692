#!/bin/sh
# run.sh -- run test executables from the repository root, sum their
# "N passed, N failed" lines, print the total, and fail if any test failed.
# An argument VAR=VALUE@PROGRAM runs PROGRAM with VAR=VALUE in its
# environment (e.g. the service tests once more against PostgreSQL).
# Of each program's output it shows every failed check (check.h prints
# "file:line: ... failed..."), up to 40 other diagnostic lines, and its
# summary "prog: N passed, N failed" once.
check_re='^[^ :]+:[0-9]+: .* failed($|: )'
summary_re='^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed$'
diag_re='failed|error|ERROR|runtime error|^FAIL |once more'
passed=0; failed=0; broken=""
for arg in "$@"; do
    case "$arg" in
    *=*@*) envset=${arg%%@*}; t=${arg#*@}; label="$(basename "$t") [$envset]" ;;
    *) envset=""; t=$arg; label=$(basename "$t") ;;
    esac
    if [ -n "$envset" ]; then out=$(env "$envset" "$t" 2>&1); rc=$?; else out=$("$t" 2>&1); rc=$?; fi
    printf '%s\n' "$out" | awk -v c="$check_re" -v s="$summary_re" -v d="$diag_re" \
        '$0 ~ c { print; next } $0 ~ s { next } $0 ~ d && n++ < 40 { print }'
    line=$(printf '%s\n' "$out" | grep -E "$summary_re" | tail -n 1)
    if [ -z "$line" ] || [ $rc -ne 0 ]; then
        [ -z "$line" ] && printf '%s\n' "$out" | tail -n 20
        broken="$broken $label(exit $rc)"
    fi
    if [ -n "$envset" ] && [ -n "$line" ]; then echo "$line [$envset]"; else echo "${line:-$label: no report}"; fi
    p=$(printf '%s' "$line" | sed -nE 's/.*: ([0-9]+) passed.*/\1/p'); f=$(printf '%s' "$line" | sed -nE 's/.* ([0-9]+) failed$/\1/p')
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
[ -n "$broken" ] && echo "broken:$broken"
echo "total: $passed passed, $failed failed"
[ -z "$broken" ] && [ "$failed" -eq 0 ]
