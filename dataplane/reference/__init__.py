"""Pure-Python reference model of the packet path (docs/packet-path.md) and the flow
table (docs/flow-table.md).

The oracle for the Cython core: same inputs, same output bytes, same counters.
"""
from .flows import FatFlows, FlowKey, FlowTable, flow_key, key_hash
from .forwarder import Lpm, ReferenceForwarder, checksum_update, rewrite, select_member
from .parse import Parsed, parse

__all__ = ["FatFlows", "FlowKey", "FlowTable", "Lpm", "Parsed", "ReferenceForwarder",
           "checksum_update", "flow_key", "key_hash", "parse", "rewrite", "select_member"]
