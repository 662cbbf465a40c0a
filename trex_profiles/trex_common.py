"""What the TRex STL profiles of this directory share; not a profile itself (no register()).

TRex's loader (STLProfile.load_py) puts a profile's directory first on sys.path while it
imports the profile, so a profile here does `from trex_common import ...`. This module
runs under TRex's own python and bundled scapy: it imports only TRex's API, argparse, os
and re.

The conventions it holds (README.md, "Conventions"):

- tunables: `-t` arguments parsed by ProfileArgs, whose errors raise ValueError (TRex
  shows the message) instead of exiting; `-t --help` shows the defaults, under the
  profile's file name. --src-mac / --dst-mac are the last tunables of every profile and
  are checked last.
- MACs: Ether src is TRex port i's MAC 02:00:00:00:10:0<i+1>, dst the pairing config's
  port i's MAC 02:00:00:00:00:0<i+1>.
- sizes: --size is the frame size without FCS, at least 60 and at least the headers; a
  zero payload pads the frame to it (sized, padded), or zero Ethernet padding after the
  IP packet where there is no payload (ether_padded: a bare SYN, short fragments).
- checks: a tunable out of its range is "--NAME must be from LO to HI, got V".
"""
import argparse
import os
import re

from trex.stl.api import Ether, Padding, Raw

MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
TREX_MAC = "02:00:00:00:10:%02x"       # TRex port i has ...:(i + 1)
DUT_MAC = "02:00:00:00:00:%02x"        # the pairing config's port i has ...:(i + 1)
MIN_FRAME = 60                         # bytes without FCS: a 64-byte frame on the wire


class ProfileArgs(argparse.ArgumentParser):
    """argparse whose errors raise (TRex shows the message) instead of exiting."""

    def error(self, message):
        raise ValueError("%s: %s" % (self.prog, message))


def profile_args(path, description):
    """The tunables parser of the profile at `path` (its __file__): named after the file,
    defaults shown by -t --help."""
    return ProfileArgs(prog=os.path.basename(path), description=description,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def add_size(p, default):
    """--size BYTES (frame size without FCS); sized() checks it against the headers."""
    p.add_argument("--size", type=int, default=default, help="frame size without FCS")


def parse_args(p, tunables, port_id):
    """Add --src-mac / --dst-mac (defaults: TRex port `port_id`'s MAC and the pairing
    config's port MAC) after the profile's own tunables, and parse `tunables`. Call
    check_macs() after the profile's own checks."""
    p.add_argument("--src-mac", default=TREX_MAC % (port_id + 1), help="Ether source")
    p.add_argument("--dst-mac", default=DUT_MAC % (port_id + 1),
                   help="Ether destination: the pairing config's port MAC")
    return p.parse_args(list(tunables or []))


def check_range(p, option, value, lo, hi):
    """`option`'s `value` must be from lo to hi (inclusive)."""
    if not lo <= value <= hi:
        p.error("%s must be from %d to %d, got %d" % (option, lo, hi, value))


def check_macs(p, args):
    for mac in (args.src_mac, args.dst_mac):
        if not MAC_RE.match(mac):
            p.error("a MAC must be xx:xx:xx:xx:xx:xx, got %r" % mac)


def ether(args):
    """The outer Ethernet header: --src-mac -> --dst-mac."""
    return Ether(src=args.src_mac, dst=args.dst_mac)


def padded(base, size):
    """`base` with a zero payload (Raw) up to `size` bytes."""
    return base / Raw(b"\x00" * (size - len(base)))


def sized(p, base, size):
    """`base` padded to exactly --size bytes; --size under 60 or the headers is an error."""
    least = max(MIN_FRAME, len(base))
    if size < least:
        p.error("--size must be at least %d, got %d" % (least, size))
    return padded(base, size)


def ether_padded(pkt, size):
    """`pkt` with zero Ethernet padding (Padding: outside the IP total length) up to `size`
    bytes when it is shorter; pass remove_fcs=False to STLPktBuilder to keep it."""
    if len(pkt) < size:
        pkt = pkt / Padding(b"\x00" * (size - len(pkt)))
    return pkt


def ip2int(ip):
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d
