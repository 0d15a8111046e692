#!/bin/sh
# man-check.sh -- check that a farmsd(1) page is true to the binary's help:
# every --option and FARMSD_* variable that `farmsd --help` or any
# `farmsd COMMAND --help` prints is in the page, every command has a section,
# groff reads the page without a warning, and packaging/farmsd.default (the
# unit's /etc/default/farmsd) has a line for every FARMSD_* of `farmsd serve`
# but FARMSD_DATA. Prints what is missing.
#   packaging/man-check.sh build/farmsd build/farmsd.1
set -eu
bin=${1:?usage: man-check.sh FARMSD_BINARY PAGE}
page=${2:?usage: man-check.sh FARMSD_BINARY PAGE}
fail=0
commands=$("$bin" --help | awk '/^Commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}')
[ -n "$commands" ] || { echo "man-check: no commands in '$bin --help'"; exit 1; }
# The page with roff's \- read as - and font changes dropped: words as the help prints them.
text=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page")
n=0
for c in '' $commands; do
    help=$("$bin" $c --help)
    case $help in usage:*) ;; *) continue ;; esac
    if [ -n "$c" ] && ! printf '%s\n' "$text" | grep -qi "^\.SH \"FARMSD $c\""; then
        echo "man-check: no section for 'farmsd $c'"; fail=1
    fi
    for w in $(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z0-9-]*|FARMSD_[A-Z0-9_]+' | sort -u); do
        n=$((n + 1))
        printf '%s\n' "$text" | grep -qE -- "(^|[^A-Za-z0-9_-])$w([^A-Za-z0-9_-]|\$)" || { echo "man-check: '$w' (farmsd $c --help) not in $page"; fail=1; }
    done
done
# The environment file shipped for the unit lists every variable of serve.
defaults=$(dirname "$0")/farmsd.default
for v in $("$bin" serve --help | grep -oE 'FARMSD_[A-Z0-9_]+' | sort -u); do
    [ "$v" = FARMSD_DATA ] && continue # the unit fixes --data
    grep -qE "^#?$v=" "$defaults" || { echo "man-check: $v (farmsd serve --help) not in $defaults"; fail=1; }
done
warn=$(groff -man -ww -z "$page" 2>&1) || true
[ -z "$warn" ] || { echo "man-check: groff: $warn"; fail=1; }
[ "$fail" = 0 ] && echo "man-check: $page names all $n options and variables of the help texts"
exit $fail
