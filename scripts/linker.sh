#!/bin/sh
# The linker cargo calls for native Linux targets (.cargo/config.toml): the system's cc, told to
# use mold when mold is installed (several times faster on the large test executables).
# With SAAD_LINK_LOG set, each link's wall time and output file are appended to that file
# (scripts/test.sh sums them into its phase table).
if command -v mold >/dev/null 2>&1; then
  set -- -fuse-ld=mold "$@"
fi
if [ -z "${SAAD_LINK_LOG:-}" ]; then
  exec cc "$@"
fi
start=$(date +%s.%N)
cc "$@"
rc=$?
out=
prev=
for arg in "$@"; do
  [ "$prev" = "-o" ] && out=$arg
  prev=$arg
done
echo "$start $(date +%s.%N) $rc $out" >>"$SAAD_LINK_LOG"
exit $rc
