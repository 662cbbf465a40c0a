"""Run by a TRex-capable python3 (never imported by dataplane): load one STL profile with
TRex's own client library and print its streams' compiled JSON on stdout.

    python3 _dump.py LIBDIR PROFILE PORT DIRECTION [TUNABLES...]

TRex puts its bundled scapy first on sys.path, so this cannot run in dataplane's process.
"""
import json
import os
import sys


def main(argv):
    libdir, profile, port, direction, tunables = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4:]
    sys.path.insert(0, libdir)
    import warnings
    warnings.simplefilter("ignore")
    from trex.stl.api import STLProfile, TRexError
    try:
        prof = STLProfile.load(profile, direction=direction, port_id=port, tunables=tunables)
    except TRexError as e:
        print(str(e).strip(), file=sys.stderr)
        return 1
    if prof is None:                       # "-t --help": argparse printed its usage
        return 3
    out = []
    for s in prof.get_streams():
        j = s.to_json()
        j["name"] = s.get_name()
        j["next"] = s.get_next()
        out.append(j)
    json.dump({"profile": os.path.abspath(profile), "port": port, "direction": direction,
               "tunables": tunables, "streams": out}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
