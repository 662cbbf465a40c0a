"""Pure-Python reference model of the packet path (docs/packet-path.md).

The oracle for the Cython core: same inputs, same output bytes, same counters.
"""
from .forwarder import Lpm, ReferenceForwarder, checksum_update, rewrite, select_member
from .parse import Parsed, parse

__all__ = ["Lpm", "Parsed", "ReferenceForwarder", "checksum_update", "parse", "rewrite",
           "select_member"]
