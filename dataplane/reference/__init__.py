"""Pure-Python reference model of the packet path (docs/packet-path.md) and the flow
table (docs/flow-table.md).

The oracle for the Cython core: same inputs, same output bytes, same counters. One module
per stage, named after its pyx/ twin (parse, fatflow, flow, route, ecmp, rewrite,
mpls_input, mpls_hash, push, mpls_output, mirror, pipeline).
"""
from .fatflow import FatFlows, FlowKey, flow_key, flow_key_hash
from .flow import FlowTable
from .ecmp import select_member
from .parse import Parsed, parse
from .pipeline import ReferenceForwarder
from .rewrite import checksum_update, rewrite
from .route import Lpm

__all__ = ["FatFlows", "FlowKey", "FlowTable", "Lpm", "Parsed", "ReferenceForwarder",
           "checksum_update", "flow_key", "flow_key_hash", "parse", "rewrite", "select_member"]
