"""Pure-Python reference model of the packet path (docs/packet-path.md).

The oracle for the Cython core: same inputs, same output bytes, same counters.
"""
from .forwarder import Lpm, ReferenceForwarder, checksum_update, rewrite, select_member  # noqa: F401
from .parse import Parsed, parse  # noqa: F401
