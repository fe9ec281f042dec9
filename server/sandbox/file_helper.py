"""File operations performed inside the sandbox, as the sandbox user, by a shell script.

Why inside: a path checked from outside and then used by the engine's root-privileged
archive API can be swapped under it (a directory exchanged with a symlink to /etc). Here
the walk itself cannot be fooled: the script enters one component at a time with `cd -P`
and then asks the kernel where it is (`$PWD` after `cd -P` is getcwd(2)); /workspace is
its own filesystem mounted only there, so a working directory under /workspace is on it,
whatever is renamed afterwards. The last component is opened with O_NOFOLLOW relative to
that directory, replaced by rename(2) (which never follows it), or listed by `find -P`.
A symlink on the way that stays inside /workspace is followed; one that leads out is
refused. Needs only /bin/sh, GNU coreutils/findutils and GNU tar (both sandbox images have them).

The script answers with one status line on stdout (`OK ...`, or a word and the index of
the path component it concerns), followed by the content for a read, the entries of a
listing (NUL-terminated `dev type size mode mtime name` records), or for a tree a tar of the
directory made by GNU tar from inside it (links archived as links, never followed; only
/workspace's filesystem), cut off after the given number of bytes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from server.sandbox.backend import BackendError, ResourceLimit, SandboxBackend

log = logging.getLogger(__name__)

SCRIPT = r"""
set -f
out() { printf '%s\n' "$*"; exit 0; }
inside() { case $PWD in /workspace|/workspace/*) ;; *) out OUT "$1" ;; esac; }
enter() {
  if ! cd -P -- "$2" 2>/dev/null; then
    if [ -L "$2" ]; then out DANGLING "$1"; elif [ -e "$2" ]; then out NOTDIR "$1"; fi
    out MISSING "$1"
  fi
  inside "$1"
}
walk() {
  create=$1; shift; last=$#; i=0
  for c; do
    i=$((i+1))
    if [ $i -eq $last ]; then name=$c; return; fi
    if [ "$create" = 1 ] && [ ! -e "$c" ] && [ ! -L "$c" ]; then
      err=$(mkdir -- "$c" 2>&1) || case $err in *"No space"*) out NOSPACE;; esac
    fi
    enter $i "$c"
  done
}
final() {
  hops=0; symlinked=0
  while [ -L "$name" ]; do
    hops=$((hops+1)); [ $hops -le 16 ] || out LOOP "$last"
    real=$(readlink -f -- "$name") || out DANGLING "$last"
    symlinked=1
    case $real in /workspace) out ISDIR "$last";; /workspace/*) ;; *) out OUT "$last";; esac
    cd -P -- "${real%/*}/" 2>/dev/null || out DANGLING "$last"
    inside "$last"
    name=${real##*/}
  done
}
op=$1; shift
cd -P /workspace || out FAILED
case $op in
read)
  max=$1; shift; walk 0 "$@"; final
  st=$(stat -c '%f %s %a %.9Y' -- "$name" 2>/dev/null) || out MISSING "$last"
  set -- $st
  kind=$(( 0x$1 & 61440 ))
  [ $kind -eq 16384 ] && out ISDIR "$last"
  [ $kind -eq 32768 ] || out MISSING "$last"
  [ "$2" -le "$max" ] || out TOOBIG "$2"
  printf 'OK %s %s %s\n' "$3" "$4" "$symlinked"
  exec dd if="$name" iflag=nofollow,nonblock,count_bytes count=$((max+1)) bs=65536 status=none
  ;;
write)
  mode=$1; shift; walk 1 "$@"; final
  [ -d "$name" ] && out ISDIR "$last"
  if ! tmp=$(mktemp -p . .forge-write.XXXXXXXX 2>&1); then
    case $tmp in *"No space"*) out NOSPACE;; esac
    out FAILED
  fi
  if ! err=$(dd of="$tmp" oflag=nofollow conv=nocreat bs=65536 status=none 2>&1); then
    rm -f -- "$tmp"
    case $err in *"No space"*) out NOSPACE;; esac
    out FAILED
  fi
  chmod "$mode" -- "$tmp" && mv -fT -- "$tmp" "$name" 2>/dev/null && out OK
  rm -f -- "$tmp"; [ -d "$name" ] && out ISDIR "$last"; out FAILED
  ;;
list)
  recursive=$1; limit=$2; shift 2; i=0
  for c; do i=$((i+1)); enter $i "$c"; done
  printf 'OK %s\n' "$(stat -c %d .)"
  if [ "$recursive" = 1 ]; then set --; else set -- -maxdepth 1; fi
  find . -xdev -mindepth 1 "$@" -printf '%P\0' 2>/dev/null | sort -z \
    | awk -v RS='\0' -v ORS='\0' \
      'BEGIN { a = ENVIRON["FORGE_AFTER"] } a == "" || ($0 "") > (a "")' \
    | head -z -n "$limit" \
    | xargs -0 -r stat --printf '%d %f %s %a %.9Y %n\0' -- 2>/dev/null
  exit 0
  ;;
delete)
  recursive=$1; shift; walk 0 "$@"
  [ -e "$name" ] || [ -L "$name" ] || out MISSING "$last"
  if [ -d "$name" ] && [ ! -L "$name" ]; then
    if [ "$recursive" = 1 ]; then set -- rm -rf --; else set -- rmdir --; fi
  else
    set -- rm -f --
  fi
  err=$("$@" "$name" 2>&1) && out OK
  case $err in *"ot empty"*) out NOTEMPTY;; esac
  out FAILED
  ;;
dir)
  i=0; for c; do i=$((i+1)); enter $i "$c"; done
  out OK
  ;;
tree)
  max=$1; shift; i=0
  for c; do i=$((i+1)); enter $i "$c"; done
  printf 'OK %s\n' "$(stat -c %d .)"
  tar -cf - --format=posix --one-file-system . 2>/dev/null | head -c $((max+1))
  exit 0
  ;;
esac
out FAILED
"""

# The helper is killed after this long (e.g. blocked on a FIFO swapped in by the sandbox).
HELPER_TIMEOUT_SECONDS = 60
_STATUS_BYTES = 256


@dataclass(frozen=True)
class Answer:
    status: str
    words: list[str]
    payload: bytes
    exit_code: int | None

    def index(self) -> int:
        """The 1-based path component the status concerns."""
        return int(self.words[0])


class FileHelper:
    def __init__(self, backend: SandboxBackend) -> None:
        self._backend = backend

    async def run(
        self,
        container_id: str,
        op: str,
        args: Sequence[str],
        *,
        stdin: bytes = b"",
        max_output: int = 1024 * 1024,
        env: dict[str, str] | None = None,
    ) -> Answer:
        argv = [
            "timeout",
            "-s",
            "KILL",
            str(HELPER_TIMEOUT_SECONDS),
            "/bin/sh",
            "-c",
            SCRIPT,
            "forge-files",
            op,
            *args,
        ]
        environment = {
            "LC_ALL": "C",
            "CDPATH": "",
            "FORGE_EXEC_ID": f"files-{uuid.uuid4()}",
            **(env or {}),
        }
        # A helper that died without answering is tried once more, except for a delete
        # (which may have happened: a second try would report the path missing).
        attempts = 1 if op == "delete" else 2
        for attempt in range(1, attempts + 1):
            try:
                result = await self._backend.run_helper(
                    container_id,
                    argv,
                    stdin=stdin,
                    env=environment,
                    max_output=max_output + _STATUS_BYTES,
                    timeout=HELPER_TIMEOUT_SECONDS + 5,
                )
            except BackendError as error:
                # Only an unexplained engine failure (not a paused or gone container).
                if type(error) is not BackendError or attempt == attempts:
                    raise
                log.warning("the file helper did not start", extra={"error": str(error)})
                continue
            line, newline, payload = result.stdout.partition(b"\n")
            if newline:
                status, *words = line.decode(errors="replace").split(" ")
                return Answer(status, words, payload, result.exit_code)
            detail = result.stderr.decode(errors="replace").strip()
            if "resource temporarily unavailable" in detail.lower() or "fork" in detail.lower():
                raise ResourceLimit(detail)
            log.warning(
                "the file helper gave no answer",
                extra={"op": op, "exit_code": result.exit_code, "stderr": detail[:300]},
            )
            if attempt == attempts:
                break
        raise BackendError(f"the file helper failed ({result.exit_code}): {detail[:200]}")
