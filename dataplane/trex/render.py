"""The packets a TRex port sends for a profile's compiled streams, in time order.

`render(streams, count)` takes `library.load_streams(...)` output and returns the first
`count` (timestamp in seconds, frame) pairs, as TRex v3.08's stateless data path schedules
them on one DP core (src/stx/stl/trex_stl_dp_core.cpp, trex_stl_stream_node.h,
trex_stl_stream.h); each stream's frames come from its own `vm.FieldEngine`.

Scheduling (established from TRex's source)
  * Disabled streams are dropped (a stream pointing at one is an error, as in TRex).
  * A stream with self_start begins at isg (MICROseconds in TRex) after time 0; the others
    wait to be triggered.  A continuous stream sends every 1/pps s (TRex accumulates the
    gap in a double: t += 1/pps, reproduced as such).
  * single_burst sends total_pkts; multi_burst sends `count` bursts of pkts_per_burst,
    `ibg` (microseconds) after the LAST packet of the previous burst.
  * When a burst stream ends, its `next` stream (if not already running) starts at the
    time of the ending stream's last packet plus the next stream's isg (so with isg 0 its
    first packet shares that timestamp).  A restarted stream keeps its field-engine state
    (TRex does not reset it).  `action_count` N > 0 on the ending stream lets it trigger
    its next stream N - 1 times, then stops.  When no stream is left active the port stops
    and fewer than `count` packets may be returned.
  * Continuous streams cannot have a `next` (TRex refuses it).
  * Packets with equal timestamps are ordered by the stream's position in the list.
  * Null ("dummy", flags & 8) streams keep their timing but send nothing; start_paused
    streams send nothing and tick every 0.1 s, as TRex's paused nodes do.

Rates: TRex converts with the frame size L = the packet (or the field engine's expected
length when trim_pkt_size varies it) + 4 bytes of FCS:
  pps = bps_L2 / (8 L);  bps_L1 counts 20 more bytes per frame (preamble 8 + IFG 12):
  pps = bps_L1 * (L / (L + 20)) / (8 L);  percentage: bps_L1 = pct / 100 * line rate.
Frames are returned without the FCS (as in the JSON), zero-padded to 60 bytes as TRex does.

Not modelled: the multiplier given at start (factor 1 is used), multi-core split,
flow_stats (latency / TPG payload rewriting: refused unless ignore_flow_stats), the
timestamp TRex's scheduler adds at start (time 0 here).  MAC addresses stay as in the
packet unless `port_macs` gives the port's (src, dst) MACs, which are then applied as TRex
does per the stream's flags (bit 0: keep the packet's source MAC; bits 1-2: destination
mode, 1 = keep the packet's).
"""
from __future__ import annotations

import base64
import heapq
import struct

from .vm import FieldEngine, _pad

__all__ = ["render", "stream_pps", "write_pcap"]

PAUSED_IPG = 0.1                 # a paused node's tick in TRex


def _usec_to_sec(usec):
    return usec / (1000 * 1000)


def stream_pps(stream, line_rate_bps=10e9, frame_len=None):
    """The stream's rate in packets/s as TRex derives it; frame_len: bytes without FCS
    (default: the packet, or its expected length when the field engine trims it)."""
    rate = stream["mode"]["rate"]
    kind, value = rate["type"], float(rate["value"])
    if value <= 0:
        raise ValueError("Rate value should be positive.")
    if kind == "pps":
        return value
    if frame_len is None:
        base = _pad(base64.b64decode(stream["packet"]["binary"]))
        frame_len = FieldEngine(stream.get("vm") or {}, base=base).expected_len
    size = frame_len + 4                              # Ethernet FCS, added by the NIC
    if kind == "bps_L2":
        return value / (8 * size)
    if kind == "bps_L1":
        bps_l1 = value
    elif kind == "percentage":
        bps_l1 = (value / 100.0) * line_rate_bps
    else:
        raise ValueError(f"unknown rate type {kind!r}")
    bps_l2 = bps_l1 * (size / (size + 20.0))
    return bps_l2 / (8 * size)


def _mac(value):
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 6:
            raise ValueError(f"MAC address must be 6 bytes: {value!r}")
        return bytes(value)
    b = bytes.fromhex(str(value).replace(":", "").replace("-", ""))
    if len(b) != 6:
        raise ValueError(f"bad MAC address {value!r}")
    return b


def _apply_port_macs(pkt, flags, src, dst):
    """TrexStatelessDpCore::update_mac_addr: the port's MACs over the packet's."""
    keep_src = bool(flags & 1)
    dst_mode = (flags >> 1) & 3                      # 0 config, 1 packet, 2 ARP-resolved
    if keep_src and dst_mode == 1:
        return pkt
    out = bytearray(pkt)
    out[0:6], out[6:12] = dst, src
    if keep_src and dst_mode == 0:
        out[6:12] = pkt[6:12]
    if not keep_src and dst_mode == 1:
        out[0:6] = pkt[0:6]
    return bytes(out)


class _Node:
    __slots__ = ("idx", "stream", "name", "engine", "base", "kind", "ipg", "isg", "ibg",
                 "burst", "bursts", "single", "multi", "active", "null", "paused",
                 "action", "next", "time")


def render(streams, count, line_rate_bps=10e9, *, unix_time=0, thread_id=0,
           port_macs=None, ignore_flow_stats=False):
    """The first `count` (seconds, frame bytes) the port sends, merged in time order.

    unix_time: stands for TRex's time(NULL) seeding streams without random_seed.
    port_macs: (src, dst) of the port to apply as TRex does; None keeps the packets' MACs.
    """
    nodes, by_name = [], {}
    for i, s in enumerate(streams):
        if not s.get("enabled", True):
            continue
        if (s.get("flow_stats") or {}).get("enabled") and not ignore_flow_stats:
            raise ValueError(f"stream {i} ({s.get('name')}): flow_stats rewrite the payload "
                             "in TRex and are not modelled (ignore_flow_stats=True to "
                             "render the packets without them)")
        n = _Node()
        n.idx, n.stream, n.name = i, s, s.get("name")
        base = _pad(base64.b64decode(s["packet"]["binary"]))
        flags = s.get("flags", 0) or 0
        n.engine = FieldEngine(s.get("vm") or {}, s.get("random_seed"), base,
                               thread_id=thread_id, unix_time=unix_time)
        if port_macs is not None:
            base = _apply_port_macs(base, flags, _mac(port_macs[0]), _mac(port_macs[1]))
        n.base = base
        mode = s["mode"]
        n.kind = mode["type"]
        pps = stream_pps(s, line_rate_bps, n.engine.expected_len)
        n.paused = bool(s.get("start_paused", False))
        n.ipg = PAUSED_IPG if n.paused else 1.0 / pps
        n.null = bool(flags & 8)
        n.isg = _usec_to_sec(float(s.get("isg", 0.0)))
        if n.kind == "continuous":
            n.burst, n.bursts, n.ibg = 0, 0, 0.0
        elif n.kind == "single_burst":
            n.burst, n.bursts, n.ibg = int(mode["total_pkts"]), 1, 0.0
        elif n.kind == "multi_burst":
            n.burst, n.bursts = int(mode["pkts_per_burst"]), int(mode["count"])
            n.ibg = _usec_to_sec(float(mode["ibg"]))
        else:
            raise ValueError(f"stream {i}: bad stream type {n.kind!r}")
        if n.kind != "continuous" and n.burst <= 0:
            raise ValueError(f"stream {i}: {n.kind} with no packets")
        n.single, n.multi = n.burst, n.bursts
        n.action = int(s.get("action_count", 0) or 0)
        n.active = False
        n.next = s.get("next")
        if n.next is not None and n.kind == "continuous":
            raise ValueError(f"continuous stream {i} ({n.name}) cannot point to another stream")
        if n.name is not None:
            if n.name in by_name:
                raise ValueError(f"duplicate stream name {n.name!r}")
            by_name[n.name] = n
        nodes.append(n)
    for n in nodes:
        if n.next is not None:
            target = by_name.get(n.next)
            if target is None:
                disabled = any(s.get("name") == n.next for s in streams)
                raise ValueError(f"stream {n.idx} ({n.name}) is pointing to a "
                                 f"{'disabled' if disabled else 'non-existent'} stream "
                                 f"{n.next!r}")
            n.next = target

    heap, seq = [], 0
    active = 0
    for n in nodes:
        if n.stream.get("self_start", True):
            n.active = True
            active += 1
            n.time = 0.0 + n.isg
            heapq.heappush(heap, (n.time, n.idx, seq, n))
            seq += 1

    out = []
    while heap and len(out) < count:
        t, _, _, n = heapq.heappop(heap)
        if not (n.paused or n.null):
            out.append((t, n.engine.packet(n.base)))
        if n.kind == "continuous":
            n.time = t + n.ipg
            heapq.heappush(heap, (n.time, n.idx, seq, n))
            seq += 1
            continue
        n.single -= 1
        if n.single > 0:
            n.time = t + n.ipg
        else:
            n.multi = (n.multi - 1) & 0xFFFFFFFF
            if n.multi != 0:                       # next burst
                n.time = t + n.ibg
                n.single = n.burst
            else:                                  # the stream ends
                n.active = False
                nxt, schedule = n.next, False
                if nxt is not None and not nxt.active:
                    if n.action > 0:
                        n.action -= 1
                        schedule = n.action != 0
                    else:
                        schedule = True
                if schedule:
                    nxt.active = True              # refresh(): bursts refilled, VM kept
                    nxt.single, nxt.multi = nxt.burst, nxt.bursts
                    nxt.time = t + nxt.isg
                    heapq.heappush(heap, (nxt.time, nxt.idx, seq, nxt))
                    seq += 1
                else:
                    active -= 1
                    if active == 0:                # the port stops
                        break
                continue
        heapq.heappush(heap, (n.time, n.idx, seq, n))
        seq += 1
    return out


def write_pcap(path, packets):
    """A classic pcap (microsecond timestamps, linktype 1 Ethernet) of (seconds, frame)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, frame in packets:
            usec_total = int(round(t * 1_000_000))
            sec, usec = divmod(usec_total, 1_000_000)
            frame = bytes(frame)
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            f.write(frame)
