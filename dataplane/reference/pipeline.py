"""Reference of pyx/pipeline.pxd: ReferenceForwarder, a burst through the stages."""
# docs/packet-path.md, docs/flow-table.md §4, docs/mpls.md. The oracle the Cython core is
# diffed against, byte for byte and counter for counter; clarity over speed. The stages
# themselves are in the sibling modules named after their pyx/ twins; what stays here is
# the wiring: forward() is the classify step (pyx/classify.pxd), labelled() and
# pw_ingress() the MPLS dispatch of pyx/mpls_output.pxd's emit_mpls, resolve() and
# flow_resolve() the route + ecmp (+ flow) decision, emit_ip() rewrite or push. Virtual
# networks (docs/virtual-networks.md): bridge.py takes a frame first (binding, learning,
# ARP / ND, bridging), neigh.py resolves next hops without a MAC (to_nexthop()).
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from .. import hashing
from ..config import vnet
from ..config.model import DEFAULT_HASH_FIELDS, Config, LfibRule, NextHop, Pseudowire
from ..drops import DROP_REASONS
from ..ecmp import build_or_none
from ..limits import BURST, MIRROR_COUNTERS, VNET_COUNTERS
from .bridge import Flood, VirtualNetworks
from .ecmp import ACTIVE, DRAIN, REMOVED, FragmentTable, GroupState, group_hash, select_member
from .fatflow import FatFlows, FlowKey, flow_key, flow_key_hash
from .flow import FlowEntry, FlowTable
from .mpls_hash import pw_flow_hash, transit_hash
from .mpls_input import (ETH_MPLS, MPLS_COUNTERS, LfibEntry, MplsDrop, ip_ttl, l2_payload,
                         overlay_decap)
from .mpls_input import process as mpls_process
from .mirror import Mirrors
from .mpls_output import pw_encap
from .neigh import HELD, Neighbours
from .parse import ETH_IPV4, ETH_IPV6, Parsed, parse
from .push import (PIPE_TTL, build_stack, gre_encap, ip_packet_length, ip_precedence,
                   udp_encap)
from .rewrite import eth_frame, rewrite
from .route import route_lookup, vrf_tables


class ReferenceForwarder:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.lpm = vrf_tables(cfg.vrfs)
        # a next hop left without `mac` is written with a zero one, then resolved
        self.nexthops = [nh if nh.mac is not None else replace(nh, mac=bytes(6))
                         for nh in cfg.nexthops]
        self.groups = [GroupState(g) for g in cfg.groups]
        up = {p.index for p in cfg.ports}      # at start every port counts as up
        for index, _, _ in vnet.aap_groups(cfg):
            self.groups[index] = aap_group_state(cfg, index, vnet.aap_members(cfg, index, up))
        self.frags = FragmentTable()
        self.fat = [FatFlows.of_port(port) for port in cfg.ports]
        self.flow_table = FlowTable(cfg.flow_table)
        self.entropy_mask = hashing.field_mask(DEFAULT_HASH_FIELDS)
        zero = dict.fromkeys(("rx", "tx") + DROP_REASONS + MIRROR_COUNTERS + VNET_COUNTERS, 0)
        self._counters = [dict(zero) for _ in cfg.ports]
        self.mirrors = Mirrors(cfg, self._counters)
        self.neigh = Neighbours(cfg, self._counters)
        self.vnet = VirtualNetworks(cfg, self.lpm, self.groups, self.nexthops, self.neigh,
                                    self._counters)
        # MPLS (docs/mpls.md): the LFIB as mpls.process() reads it, and the rule each
        # entry came from (its via / pseudowire), by the entry's identity
        self.lfib: dict[int, LfibEntry] = {}
        self._lfib_rules: dict[int, LfibRule] = {}
        for rule in cfg.mpls.lfib:
            entry = self.lfib_entry(rule)
            self.lfib[rule.label] = entry
            self._lfib_rules[id(entry)] = rule
        address = cfg.node.tunnel_address
        self.tunnel_address = None if address is None else address.packed
        self._mpls_counters = dict.fromkeys(MPLS_COUNTERS, 0)

    def lfib_entry(self, rule: LfibRule) -> LfibEntry:
        if rule.action == "swap":
            return LfibEntry("swap", tuple(rule.labels), name=rule.via or "")
        if rule.action == "pop-lookup":
            return LfibEntry("pop-lookup", vrf=rule.vrf_index, name=rule.vrf or "")
        if rule.action == "pop-xconnect":
            pw = self.cfg.pseudowires[rule.pw_index]
            return LfibEntry("pop-xconnect", control_word=pw.control_word, name=pw.name)
        return LfibEntry(rule.action)

    def process(self, in_port: int, frames: list[bytes]) -> list[tuple[int, bytes]]:
        """Forward frames received on `in_port`, BURST at a time: first the packets
        neighbour resolutions released since the last call (neigh.py), then per burst
        (egress port, frame) in input order, then the burst's flood copies. Mirror copies
        (mirror.py) wait for take_mirrored()."""
        out = self.release_held()
        rx = self._counters[in_port]
        frames = list(frames)
        for start in range(0, len(frames), BURST):
            copies = []
            for frame in frames[start:start + BURST]:
                rx["rx"] += 1
                self.mirrors.received(in_port, frame)
                result = self.forward(in_port, frame)
                if result == HELD:
                    continue
                if isinstance(result, str):
                    rx[result] += 1             # a drop reason, or consumed
                elif isinstance(result, Flood):
                    first, *others = result.ports
                    self.send(out, in_port, first, result.frame)
                    copies += [(port, result.frame) for port in others]
                else:
                    self.send(out, in_port, *result)
            for port, frame in copies:
                self.send(out, in_port, port, frame, "flooded")
        return out

    def send(self, out: list, in_port: int, port: int, frame: bytes,
             counter: str = "tx") -> None:
        self._counters[port][counter] += 1
        self.mirrors.sent(in_port, port, frame)
        out.append((port, frame))

    def release_held(self) -> list[tuple[int, bytes]]:
        """The held packets of next hops resolved since (counted tx now)."""
        out = []
        for in_port, port, frame in self.neigh.release():
            self.send(out, in_port, port, frame)
        return out

    def to_nexthop(self, in_port: int, nh: NextHop, result: tuple[int, bytes]
                   ) -> tuple[int, bytes] | str:
        """A packet rewritten toward `nh`: as it is, or (a next hop without `mac`) with
        its neighbour's MAC, HELD, or arp_unresolved (docs/virtual-networks.md §6)."""
        frame = self.neigh.out(nh.index, in_port, result[1])
        return frame if isinstance(frame, str) else (result[0], frame)

    def take_mirrored(self) -> list[tuple[int, int, bytes]]:
        """The mirror copies made since the last call: (port they leave by, 1 = rx or
        2 = tx, frame), in order per direction."""
        return self.mirrors.take()

    def set_mirror_time(self, ns: Optional[int]) -> None:
        """The timestamp of every copy to an analyzer (None: the clock)."""
        self.mirrors.fixed_ns = ns

    def forward(self, in_port: int, frame: bytes) -> tuple[int, bytes] | str:
        """(egress port, frame) or the drop reason."""
        port = self.cfg.ports[in_port]
        if port.xconnect_index is not None:     # attachment circuit (docs/mpls.md §9.1)
            return self.pw_ingress(in_port, self.cfg.pseudowires[port.xconnect_index], frame)
        if port.vrf is None:                    # neither L3 port nor attachment circuit
            return "unsupported"
        taken = self.vnet.receive(in_port, frame, self.flow_table.now())
        if taken is not None:                   # bridged, answered, consumed, dropped
            return taken
        try:
            etype, off = l2_payload(frame)
        except MplsDrop:                        # parse() below names the same drop
            etype, off = None, 0
        if etype == ETH_MPLS:                   # docs/mpls.md §1; 0x8848 is left to
            return self.labelled(in_port, frame[off:], len(frame))  # parse: unsupported
        p = parse(frame, in_port)
        if p.drop not in (None, "ttl_expired"):
            return p.drop
        if self.tunnel_address is not None and p.dst == self.tunnel_address:
            try:                                # docs/mpls.md §10.2: no TTL check
                region = overlay_decap(frame, self.tunnel_address)
            except MplsDrop as d:
                return d.reason
            if region is not None:
                return self.labelled(in_port, region, len(frame))
        if p.drop:
            return p.drop
        return self.route_ip(in_port, port.vrf_index, p, frame, len(frame), popped=False)

    def route_ip(self, in_port: int, vrf_index: int, p: Parsed, frame: bytes, length: int,
                 popped: bool) -> tuple[int, bytes] | str:
        """Flow or packet stage, route and rewrite of an IP packet parsed from `frame`, in
        VRF `vrf_index`. popped: the packet came out of a label stack (docs/mpls.md §4):
        its TTL is already the one it leaves with (no check, no decrement). `length`: the
        frame as received, for the flow entry's byte count."""
        port = self.cfg.ports[in_port]
        key, fat = self.fat[in_port].mask(flow_key(p, vrf_index))
        non_first_fragment = p.is_fragment and not p.frag_first
        if port.mode == "packet" or non_first_fragment:
            res = self.resolve(vrf_index, p, key)
        else:
            res = self.flow_resolve(vrf_index, p, key, fat, length)
        if isinstance(res, str):
            return res
        if res is None:
            return "no_route"
        nh, gs, h = res
        if h is None and (nh.entropy or nh.tunnel is not None):
            h = self.stateless_hash(gs, key, p)
        return self.to_nexthop(in_port, nh, self.emit_ip(frame, p, nh, h, popped))

    def stateless_hash(self, gs: Optional[GroupState], key: FlowKey, p: Parsed) -> int:
        """The hash a flow entry would store (docs/flow-table.md §3), for packets that
        have no entry: the entropy of a push or an overlay."""
        seed = self.cfg.node.seed
        if gs is not None:
            return group_hash(gs, key, p, seed, not gs.follow)
        return flow_key_hash(key, p.in_port, p.flow_label, self.entropy_mask, seed)

    def emit_ip(self, frame: bytes, p: Parsed, nh: NextHop, h: Optional[int], popped: bool
                ) -> tuple[int, bytes]:
        """The rewrite toward `nh` (packet-path §4), with the push of docs/mpls.md §7 or
        the overlay of §10 when the next hop has labels or a tunnel."""
        src_mac = self.cfg.ports[nh.port_index].mac
        if popped:                              # the IP packet as it leaves, padding kept
            ip = frame[p.l3:]
            if not nh.labels and nh.tunnel is None:
                etype = ETH_IPV4 if p.family == 4 else ETH_IPV6
                return nh.port_index, eth_frame(nh.mac, src_mac, etype, ip)
        else:
            out = rewrite(frame, p, nh, src_mac)
            if not nh.labels and nh.tunnel is None:
                return nh.port_index, out
            ip = out[14:]
        tc = ip_precedence(ip)
        ttl = ip_ttl(ip) if self.cfg.mpls.ttl_model == "uniform" else PIPE_TTL
        if nh.tunnel is None:
            pushed = build_stack(nh.labels, tc=tc, ttl=ttl, entropy=nh.entropy, erld=nh.erld,
                                 el=hashing.entropy_label(h) if nh.entropy else 0)
            if not pushed.el_readable:
                self._mpls_counters["el_not_readable"] += 1
            return nh.port_index, eth_frame(nh.mac, src_mac, ETH_MPLS, pushed.pack() + ip)
        region = build_stack(nh.labels, tc=tc, ttl=ttl).pack() + ip[:ip_packet_length(ip)]
        return self.tunnel_out(nh, region, h)

    def tunnel_out(self, nh: NextHop, region: bytes, h: int) -> tuple[int, bytes]:
        """docs/mpls.md §10.1: the label region in MPLS-over-UDP or MPLS-over-GRE toward
        the next hop's remote, in an Ethernet frame to its MAC."""
        remote = nh.tunnel.remote.packed
        encap = udp_encap if nh.tunnel.type == "mpls-udp" else gre_encap
        outer = encap(region, self.tunnel_address, remote, h=h)
        etype = ETH_IPV4 if len(remote) == 4 else ETH_IPV6
        return nh.port_index, eth_frame(nh.mac, self.cfg.ports[nh.port_index].mac, etype,
                                        outer)

    def via_nexthop(self, via_group: bool, via_index: int, h: int) -> Optional[NextHop]:
        """A swap's or a pseudowire's `via`: the next hop, or the group member of hash h
        by the bucket table (no flow table, no fragment table); None when every member
        is drained."""
        if not via_group:
            return self.nexthops[via_index]
        gs = self.groups[via_index]
        if gs.table is None:
            return None
        return self.member_nexthop(gs, gs.bucket_member(h))

    def labelled(self, in_port: int, region: bytes, length: int) -> tuple[int, bytes] | str:
        """A label region received on L3 port `in_port` (after Ethernet/VLAN, or inside an
        overlay addressed to this node): docs/mpls.md §2-§5."""
        mpls = self.cfg.mpls
        try:
            r = mpls_process(region, self.lfib, mpls.ttl_model)
        except MplsDrop as d:
            return d.reason
        if r.kind == "pw":                      # §9.2: the frame as carried, on the AC port
            pw = self.cfg.pseudowires[self._lfib_rules[id(r.entry)].pw_index]
            return pw.ac_port_index, r.data
        if r.kind == "mpls":                    # §5 swap
            rule = self._lfib_rules[id(r.entry)]
            nh = None if rule.via_group else self.nexthops[rule.via_index]
            h = 0
            if nh is None or nh.tunnel is not None:
                mask = (self.groups[rule.via_index].mask if rule.via_group
                        else self.entropy_mask)
                h = transit_hash(region, erld=mpls.erld, payload_guess=mpls.payload_guess,
                                 mask=mask, seed=self.cfg.node.seed, ingress_port=in_port)
                nh = self.via_nexthop(rule.via_group, rule.via_index, h)
                if nh is None:
                    return "no_route"
            if nh.tunnel is not None:
                return self.to_nexthop(in_port, nh, self.tunnel_out(nh, r.data, h))
            return self.to_nexthop(in_port, nh, (nh.port_index, eth_frame(
                nh.mac, self.cfg.ports[nh.port_index].mac, ETH_MPLS, r.data)))
        # §4 "to IP": routed in the entry's VRF or the port's, no TTL check or decrement
        vrf = self.cfg.ports[in_port].vrf_index if r.vrf is None else r.vrf
        etype = ETH_IPV4 if r.data[0] >> 4 == 4 else ETH_IPV6
        frame = bytes(12) + etype.to_bytes(2, "big") + r.data
        p = parse(frame, in_port)
        if p.drop not in (None, "ttl_expired"):
            return p.drop
        return self.route_ip(in_port, vrf, p, frame, length, popped=True)

    def pw_ingress(self, in_port: int, pw: Pseudowire, frame: bytes
                   ) -> tuple[int, bytes] | str:
        """docs/mpls.md §9.1: every frame of an attachment circuit into its pseudowire."""
        if len(frame) < 14:
            return "truncated"
        gs = self.groups[pw.via_index] if pw.via_group else None
        mask = gs.mask if gs is not None else self.entropy_mask
        h = pw_flow_hash(frame, mask, self.cfg.node.seed, ingress_port=in_port)
        nh = self.via_nexthop(pw.via_group, pw.via_index, h)
        if nh is None:
            return "no_route"
        data = pw_encap(frame, nh.labels, pw.label, fat=pw.fat, control_word=pw.control_word,
                        h=h, entropy=nh.entropy, erld=nh.erld)
        if not data.el_readable:
            self._mpls_counters["el_not_readable"] += 1
        if nh.tunnel is not None:
            return self.to_nexthop(in_port, nh, self.tunnel_out(nh, data.data, h))
        return self.to_nexthop(in_port, nh, (nh.port_index, eth_frame(
            nh.mac, self.cfg.ports[nh.port_index].mac, ETH_MPLS, data.data)))

    def resolve(self, vrf_index: int, p: Parsed, key: FlowKey):
        """Stateless: route, then the group member by the hash (packet mode).
        (next hop, group state or None, None) or None (no route)."""
        route = route_lookup(self.lpm, vrf_index, p)
        if route is None:
            return None
        if not route.via_group:
            return self.nexthops[route.via_index], None, None
        gs = self.groups[route.via_index]
        m = select_member(gs, p, self.cfg.node.seed, self.frags, key)
        if m is None:
            return None
        return self.member_nexthop(gs, m), gs, None

    def flow_resolve(self, vrf_index: int, p: Parsed, key: FlowKey, fat: bool, length: int):
        """Flow mode (docs/flow-table.md §4): the table decides, or a miss creates the
        entry. (next hop, group state or None, the entry's hash or None when no entry),
        None (no route) or a drop reason."""
        table, seed = self.flow_table, self.cfg.node.seed
        now = table.now()
        e = table.get(key)
        if e is not None:                       # hit: the entry's route result
            table.account(key, e, length, p.tcp_flags, now)
            if e.group is None:
                return self.nexthops[e.nh_id], None, e.hash
            gs = self.groups[e.group]
            if gs.state[e.member] == REMOVED:
                if gs.table is None:            # nowhere to go: entry left as it is
                    return None
                e.member = gs.bucket_member(e.hash)
                table.counters["flow_rehashed"] += 1
            select_member(gs, p, seed, self.frags, key, pinned=e.member)
            return self.member_nexthop(gs, e.member), gs, e.hash
        route = route_lookup(self.lpm, vrf_index, p)
        if route is None:
            return None
        gs = m = None
        if route.via_group:
            gs = self.groups[route.via_index]
            if gs.table is None:                # every member drained: no entry
                return None
            m = select_member(gs, p, seed, self.frags, key)
        h = None
        if p.frag_first:
            pass        # a first fragment uses an entry but never makes one (docs/workers.md)
        elif table.full:
            table.counters["flow_table_full"] += 1
            if self.cfg.flow_table.on_full == "drop":
                return "flow_table_full"
        else:
            if gs is None:
                h = flow_key_hash(key, p.in_port, p.flow_label, self.entropy_mask, seed)
            else:
                h = group_hash(gs, key, p, seed, not gs.follow)
            e = FlowEntry(p.in_port, route.via_index if gs is None else gs.member_nh[m],
                          None if gs is None else route.via_index, m, h, now, now, fat)
            table.insert(key, e)
            table.account(key, e, length, p.tcp_flags, now)
        if gs is None:
            return self.nexthops[route.via_index], None, h
        return self.member_nexthop(gs, m), gs, h

    def member_nexthop(self, gs: GroupState, m: int) -> NextHop:
        gs.packets[m] += 1
        return self.nexthops[gs.member_nh[m]]

    def counters(self) -> dict[str, dict[str, int]]:
        """Per port: rx, tx and the drops by reason."""
        return {port.name: {k: c[k] for k in ("rx", "tx") + DROP_REASONS}
                for port, c in zip(self.cfg.ports, self._counters)}

    def vnet_counters(self) -> dict[str, dict[str, int]]:
        """Per port: consumed, arp_replied, flooded, flood_dropped, arp_sent, mac_moved
        (docs/virtual-networks.md §7)."""
        return {port.name: {k: c[k] for k in VNET_COUNTERS}
                for port, c in zip(self.cfg.ports, self._counters)}

    def mirror_counters(self) -> dict[str, dict[str, int]]:
        """Per port: mirrored, mirror_dropped (docs/mirroring.md §4)."""
        return {port.name: {k: c[k] for k in MIRROR_COUNTERS}
                for port, c in zip(self.cfg.ports, self._counters)}

    def group_counters(self, index: int) -> list[int]:
        return list(self.groups[index].packets)

    def frag_counters(self) -> dict[str, int]:
        return {"frag_followed": self.frags.followed, "frag_fallback": self.frags.fallback}

    def mpls_counters(self) -> dict[str, int]:
        """Node counters of docs/mpls.md §3 that are no drop: el_not_readable."""
        return dict(self._mpls_counters)

    # ---- flow table and live group changes (the Core API) ---------------------------

    def update_group(self, index: int, members: list[tuple[int, int, bool]]) -> None:
        self.groups[index].update(members)

    def set_clock(self, seconds: Optional[float]) -> None:
        self.flow_table.clock = None if seconds is None else float(seconds)

    def age_all(self) -> None:
        self.flow_table.age_all()

    def flows(self) -> list[dict]:
        return self.flow_table.listing(lambda g, m: self.groups[g].member_nh[m])

    def flow_flush(self) -> None:
        self.flow_table.flush()

    def flow_counters(self) -> dict[str, int]:
        return self.flow_table.counter_values()

    # ---- virtual networks (docs/virtual-networks.md §8) -------------------------------

    def neigh_tick(self) -> list[tuple[int, bytes]]:
        """The held packets resolutions released, then the ARP requests / NSes due at
        the clock (counted arp_sent)."""
        out = self.release_held()
        for port, frame in self.neigh.tick(self.flow_table.now()):
            self.mirrors.sent(port, port, frame)    # no ingress: the port itself
            out.append((port, frame))
        return out

    def neighbors(self) -> list[tuple[int, str, Optional[bytes], str]]:
        """[(port, ip text, MAC or None, "incomplete" | "reachable")], neighbour order."""
        return self.neigh.listing()

    def held_count(self) -> int:
        return self.neigh.held_count()

    def drop_held(self) -> None:
        """What a stopping worker does: every held packet dropped arp_unresolved."""
        self.neigh.drop_held()

    def bridge_table(self) -> list[tuple[int, bytes, int, str, int]]:
        """[(VRF index, MAC, port index, "static" | "learned", hits)] by (VRF, MAC)."""
        return self.vnet.table.listing()

    def bridge_age(self) -> int:
        """Remove the learned entries unused for their VRF's mac_aging: how many."""
        return self.vnet.table.age(self.flow_table.now(), self.vnet.aging)


def aap_group_state(cfg: Config, index: int, members: list[tuple[int, int, bool]]
                    ) -> GroupState:
    """An implicit AAP group as compile.group_table() starts it: the members' table built
    from their start weights (absent members 0), absent members removed."""
    gs = GroupState(cfg.groups[index])
    weights = [w if present else 0 for _, w, present in members]
    gs.table = build_or_none(weights, cfg.groups[index].buckets)
    gs.member_nh = [nh for nh, _, _ in members]
    gs.state = [REMOVED if not present else ACTIVE if w else DRAIN for _, w, present in members]
    return gs
