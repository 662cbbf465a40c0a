"""Pure-Python reference model of the packet path (docs/packet-path.md), the flow
table (docs/flow-table.md) and virtual networks (docs/virtual-networks.md).

The oracle for the Cython core: same inputs, same output bytes, same counters. One module
per stage, named after its pyx/ twin (parse, fatflow, flow, route, ecmp, rewrite,
mpls_input, mpls_hash, push, mpls_output, mirror, bridge, neigh, pipeline).
"""
from .bridge import BridgeTable, VirtualNetworks
from .fatflow import FatFlows, FlowKey, flow_key, flow_key_hash
from .flow import FlowTable
from .neigh import Neighbours
from .ecmp import select_member
from .parse import Parsed, parse
from .pipeline import ReferenceForwarder
from .rewrite import checksum_update, rewrite
from .route import Lpm

__all__ = ["BridgeTable", "FatFlows", "FlowKey", "FlowTable", "Lpm", "Neighbours", "Parsed",
           "ReferenceForwarder", "VirtualNetworks", "checksum_update", "flow_key",
           "flow_key_hash", "parse", "rewrite", "select_member"]
