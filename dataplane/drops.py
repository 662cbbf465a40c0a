"""Named drop reasons: their order is the index of each counter in the C core."""

DROP_REASONS = (
    "parse_error",   # malformed header (bad version, bad IHL, bad lengths)
    "truncated",     # a header ends past the end of the frame
    "no_route",      # no LPM match in the VRF
    "ttl_expired",   # TTL / hop limit <= 1 on arrival
    "martian",       # source or destination that must never be forwarded
    "unsupported",   # EtherType, multicast, third VLAN tag, ... not handled
    "tx_full",       # the egress port refused the packet (counted on egress)
    "flow_table_full",  # a new flow found the flow table full (on_full: drop)
    "no_lfib_entry",    # the label to process has no LFIB entry (docs/mpls.md §3)
    "mpls_ttl_expired",  # a labelled packet would leave with TTL 0 (docs/mpls.md §6)
    "split_headers",    # headers continue past the first mbuf segment (multi-segment)
    "unknown_unicast",  # bridged to a MAC the VRF does not know, no flooding (§13)
    "spoofed",          # source MAC:IP not the port's binding nor an allowed pair
    "arp_unresolved",   # next hop unresolved and its held-packet queue full
    "hairpin",          # bridged back to the port it came in on
)

DROP_DESCRIPTIONS = {
    "parse_error": "malformed header (version, IHL, length fields)",
    "truncated": "a header extends past the end of the frame",
    "no_route": "no route in the ingress port's VRF",
    "ttl_expired": "TTL or hop limit <= 1 on arrival",
    "martian": "source/destination address that is never forwarded",
    "unsupported": "not handled: EtherType, multicast, 3+ VLAN tags, 9+ IPv6 ext headers",
    "tx_full": "egress port TX queue full",
    "flow_table_full": "new flow, flow table full and on_full: drop",
    "no_lfib_entry": "the label to process has no LFIB entry",
    "mpls_ttl_expired": "label TTL <= 1 on lookup, or TTL 0 when popped to IP",
    "split_headers": "headers continue past the packet's first mbuf segment",
    "unknown_unicast": "bridged to an unknown MAC, flood_unknown_unicast off",
    "spoofed": "source MAC:IP is neither the port's binding nor an allowed address pair",
    "arp_unresolved": "next hop not resolved by ARP/ND and its queue full (or at stop)",
    "hairpin": "the bridge table sends it back out of the port it came in on",
}
