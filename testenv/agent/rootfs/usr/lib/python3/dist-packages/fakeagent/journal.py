"""Fake `journalctl`: prints what units wrote to /var/log/fake-systemd/<unit>.log."""

import os
import sys

from . import common


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    units, lines, output = [], None, "short"
    # `_SYSTEMD_UNIT=x` matches what the unit's own processes logged, not
    # systemd's messages about the unit (those come from PID 1).
    own_only = False
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a in ("-u", "--unit"):
            units.append(argv[i])
            i += 1
        elif a.startswith("--unit="):
            units.append(a.split("=", 1)[1])
        elif a.startswith("-u") and len(a) > 2:
            units.append(a[2:])
        elif a in ("-n", "--lines"):
            lines = argv[i]
            i += 1
        elif a.startswith("--lines="):
            lines = a.split("=", 1)[1]
        elif a.startswith("-n") and len(a) > 2:
            lines = a[2:]
        elif a in ("-o", "--output"):
            output = argv[i]
            i += 1
        elif a.startswith("--output="):
            output = a.split("=", 1)[1]
        elif a.startswith("_SYSTEMD_UNIT="):
            units.append(a.split("=", 1)[1])
            own_only = True
        elif a in ("--since", "--until", "-p", "--priority"):
            i += 1
        elif a.startswith("-"):
            continue  # --no-pager, -b, -x, -e, -q, --no-hostname, ...
    if not units:
        sys.stderr.write("journalctl (fake): only -u UNIT or _SYSTEMD_UNIT=UNIT is supported\n")
        return 1
    out = []
    for u in units:
        short = u[: -len(".service")] if u.endswith(".service") else u
        try:
            with open(os.path.join(common.SYSTEMD_LOG_DIR, short + ".log"), errors="replace") as f:
                out.extend(f.read().splitlines())
        except OSError:
            pass
    if own_only:
        out = [l for l in out if " systemd[1]: " not in l]
    if output == "cat":
        out = [l.split(" systemd[1]: ", 1)[1] if " systemd[1]: " in l else l for l in out]
    if lines not in (None, "all", "+0"):
        n = int(lines)
        out = out[-n:] if n > 0 else []
    if not out:
        print("-- No entries --")
    else:
        print("\n".join(out))
    return 0


def entry():
    sys.exit(main())
