#!/bin/sh
# Prints the size of every cross-built binary (dist/<arch>/weft) and package
# (dist/weft_*_<arch>.ipk, dist/<arch>/weft-*.apk) and fails if one is over
# the flash budget:
#   binary       <= WEFT_BIN_BUDGET bytes (default 1 500 000, i.e. 1.5 MB)
#   .ipk, .apk   <= WEFT_IPK_BUDGET bytes (default   700 000, i.e. 700 kB)
# The budget is set for mipsel_24kc (the largest code of the five) and
# applied to every arch. Build first: make ipk ARCH=all.
# shellcheck shell=dash
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIST=${DIST:-$ROOT/dist}
BIN_BUDGET=${WEFT_BIN_BUDGET:-1500000}
IPK_BUDGET=${WEFT_IPK_BUDGET:-700000}

over=0 seen=0
# kb BYTES: bytes as decimal kB with one decimal ("-" stays "-").
kb() {
	if [ "$1" = - ]; then echo -; else awk -v b="$1" 'BEGIN { printf "%.1f kB", b / 1000 }'; fi
}

printf '%-26s %12s %12s %12s %10s %10s %10s\n' arch "binary (B)" "ipk (B)" "apk (B)" binary ipk apk
for arch in $(sh "$ROOT/scripts/cross.sh" list); do
	bin=$DIST/$arch/weft
	ipk='' apk=''
	for f in "$DIST"/weft_*_"$arch".ipk; do [ -f "$f" ] && ipk=$f; done
	for f in "$DIST/$arch"/weft-*.apk; do [ -f "$f" ] && apk=$f; done
	[ -f "$bin" ] || [ -n "$ipk" ] || [ -n "$apk" ] || continue
	seen=1
	bsize=- isize=- asize=- bnote="" inote=""
	if [ -f "$bin" ]; then
		bsize=$(wc -c <"$bin")
		case "$(file -b "$bin" 2>/dev/null)" in
		*"not stripped"*) bnote=" NOT STRIPPED"; over=1 ;;
		esac
		[ "$bsize" -le "$BIN_BUDGET" ] || { bnote="$bnote OVER BUDGET"; over=1; }
	fi
	if [ -n "$ipk" ]; then
		isize=$(wc -c <"$ipk")
		[ "$isize" -le "$IPK_BUDGET" ] || { inote=" IPK OVER BUDGET"; over=1; }
	fi
	if [ -n "$apk" ]; then
		asize=$(wc -c <"$apk")
		[ "$asize" -le "$IPK_BUDGET" ] || { inote="$inote APK OVER BUDGET"; over=1; }
	fi
	printf '%-26s %12s %12s %12s %10s %10s %10s%s%s\n' "$arch" "$bsize" "$isize" "$asize" \
		"$(kb "$bsize")" "$(kb "$isize")" "$(kb "$asize")" "$bnote" "$inote"
done
if [ "$seen" = 0 ]; then
	echo "size: nothing built in $DIST (make ipk ARCH=all)" >&2
	exit 1
fi
echo "budget: binary <= $BIN_BUDGET B ($(kb "$BIN_BUDGET")), ipk and apk <= $IPK_BUDGET B ($(kb "$IPK_BUDGET"))"
[ "$over" = 0 ] || { echo "size: over the flash budget" >&2; exit 1; }
