#!/bin/sh
# Every tracked C file is as .clang-format says, and no line passes 100 columns.
# Prints the first differences; exits 1 when a file is off.
cd "$(dirname "$0")/.." || exit 2
status=0
for f in $(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*'); do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "format: $f differs from .clang-format (clang-format -i $f):"
        clang-format "$f" | diff -u "$f" - | head -n 12
        status=1
    fi
    awk -v f="$f" 'length > 100 { print "format: " f ":" FNR ": " length " columns"; bad = 1 }
        END { exit bad }' "$f" || status=1
done
[ $status = 0 ] && echo "format: every file follows .clang-format"
exit $status
