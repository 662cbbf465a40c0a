"""TRex's stateless field engine ("VM"), interpreted in Python.

`FieldEngine(vm_json, seed)` takes the `vm` object of a stream's `STLStream.to_json()`
(what `library.load_streams` returns) and `packet(base)` returns the next frame the
stream sends, as TRex v3.08's data path (DP) builds it on one DP core.  What follows is
the behaviour established from TRex's C++ sources (src/stx/stl/trex_stl_stream_vm.{h,cpp},
trex_stl_rpc_cmds.cpp, trex_stl_dp_core.cpp, main_dpdk.h); the implementation is ours.

Compilation (the server side, on stream add)
  * A packet shorter than 60 bytes is zero-padded to 60 (the frame excludes the FCS).
  * flow_var inc/dec: when (max - min + 1) is not a multiple of step, the range is padded
    to a whole cycle: max grows (inc) or min shrinks (dec) by step - (range % step).
    The step kept is step % range.
  * The state of the variables ("bss") is set to the value ONE STEP BEFORE init_value
    (init - step for inc, init + step for dec, wrapping around the range), and every
    packet first advances the variable and then writes it: the FIRST packet carries
    init_value, the second init_value +/- step.  With one DP core the per-core split
    (`split_to_cores`) does not happen, so init_value is not shifted by a core phase.
  * Wrap: inc past max restarts at min and the restart consumes one unit, so the value
    after v with v + step > max is min + (step - (max - v) - 1); dec mirrors it.
  * Value lists: the index starts at 0 (inc) or len-1 (dec); each packet writes the entry
    at the index and then moves the index by step (wrapping).
  * next_var (dependent variables): a variable that names a next_var must be followed
    directly by that variable, which must not be split to cores (error otherwise).  The
    dependent variables run only when their predecessor wraps in this packet (for a
    value list: emits one of its first `step` entries (inc) / last `step` (dec); for a
    repeatable random: restarts its sequence); otherwise the rest of the chain is skipped
    and keeps its value (an odometer).  A dependent's state starts one step before its
    init_value too, so on the first packet it shows init_value only if its predecessor
    wraps on that packet (it does when the predecessor's init_value is within one step of
    its start, e.g. init = min for inc); otherwise it shows init - step until the first
    carry.
  * trim_pkt_size: the variable (size 2, flow_var) is clamped to [60, packet length]
    (max <= length, min raised to 60, after step % range was taken); the frame is cut to
    the variable's value after the program runs.  The rate's packet size is the average
    (min + max) / 2, or for random min + TRex's fastrand average, or the list mean.
  * tuple_flow_var: ip cycles fastest over [ip_min, ip_max]; the port advances by one
    each time the ip wraps (or every packet when ip_min == ip_max); after limit_flows
    flows (if non-zero) it restarts at (ip_min, port_min).  First packet: (ip_min,
    port_min).  Names: NAME.ip (4 bytes), NAME.port (2), NAME.flow_limit (4, the flow
    counter).  flags & 1 ("unlimited") is TRex's other generator: ip + 1, and on passing
    ip_max, ip_min and port + 1 (port 0 becomes 1025) with no port_max; it starts from
    the same state as the other, (ip_max, port_max), so its first port is port_max + 1.
  * Errors that TRex raises on compile are raised as ValueError here (bad sizes, writes
    beyond the packet, writes beyond offset 512, more than 64 bytes of variables, ...).

Writes
  * write_flow_var: (value + add_value) modulo the variable's width, written big- or
    little-endian in as many bytes as the variable has.
  * write_mask_flow_var: v = (value + add_value) mod 2**32, shifted left by `shift` if
    positive, right by -shift if negative; the big-endian pkt_cast_size-byte field becomes
    (field & ~mask) | (v & mask).  With is_big_endian false TRex reads and writes the
    field little-endian and as wide as the VARIABLE (not pkt_cast_size).
  * Each packet starts from the base packet again; only the variables carry over.

Random numbers
  * One generator per stream, shared by all random flow_vars in program order: TRex's
    "fastrand", the MSVC LCG: state = 214013 * state + 2531011 (mod 2**32), a draw is
    (state >> 16) & 0x7fff (15 bits).  rand32 = (draw1 << 16) + draw2 (so only 31 bits,
    bit 15 always 0), rand64 = (rand32_1 << 32) + rand32_2 (the first draw in the high
    part: C++ leaves the order of the two calls unspecified; GCC evaluates the left one
    first).  Sizes 1 and 2 use value = min + draw % (max - min + 1): a 2-byte range wider
    than 32768 values is only covered from min to min + 32767, as in TRex.  Size 4 uses
    rand32, size 8 rand64; a value list picks list[draw % len].
  * Seed: the stream's `random_seed` when non-zero, else TRex uses rand_r() seeded with
    time(NULL) at stream start -- not reproducible.  Here `unix_time` stands for that
    time(NULL) (default 0, so an unseeded stream is still deterministic): the seed is
    glibc's rand_r(unix_time).  Either is then multiplied by (thread_id + 1) * 514229
    (mod 2**32), thread_id being the DP core (0 with one core).
  * flow_var_rand_limit (repeatable random) has its own generator seeded with its `seed`
    and restarts it (same sequence) after `limit` values.

Checksums
  * fix_checksum_ipv4: the IPv4 header checksum at pkt_offset (20 bytes when the first
    byte is 0x45, else IHL * 4).
  * fix_checksum_icmpv6: ICMPv6 checksum with the IPv6 pseudo-header, summing IPv6
    payload-length bytes from l2_len + l3_len; as in TRex an odd last byte is not summed,
    and bytes beyond the frame count as zero here (TRex reads past the buffer).
  * fix_checksum_hw: the DP clears the IPv4 header checksum and stores the L4 pseudo-
    header sum in the TCP/UDP checksum field (TCP or UDP from the IPv4 protocol field;
    from l4_type for IPv6); the NIC, or TRex's software fallback when the NIC lacks the
    offload, completes it at transmit time, after the whole program and trim_pkt_size:
    the L4 checksum over the frame from l2_len + l3_len to the END OF THE FRAME (TRex's
    fallback; a NIC uses the IP length -- the same when trailing bytes are zero or absent)
    and the IPv4 header checksum.  (TRex falls back to software for all three when the
    NIC lacks any of the IPv4/TCP/UDP checksum offloads.)  For IPv4 neither TCP nor UDP
    (l4_type IP) the DP still writes the pseudo-header sum at L4 offset 6 (as if UDP) and
    only the IPv4 header checksum is to be completed: by the NIC's offload, which is what
    is rendered here -- TRex's software fallback skips such packets, so on a NIC without
    the offloads that checksum goes out as 0.
  * Checksums no instruction fixes are left as they are in the base packet.

vm "cache": N: TRex builds the first N packets once and then sends them in a loop (the
program does not run again); so does FieldEngine.

Not modelled: flow_stats (latency/TPG payloads; see render), per-port MAC rewriting
(render applies it when given the port's MACs), more than one DP core (core phase and
split of ranges).  A host is assumed little-endian (x86) where TRex's behaviour depends on
it: write_mask_flow_var of an 8-byte variable with is_big_endian reads its HIGH 32 bits.
"""
from __future__ import annotations

import array
import base64
import functools
import sys

__all__ = ["FieldEngine", "expected_packet_length", "fastrand_average", "glibc_rand_r",
           "trex_random_seed", "MIN_FRAME", "MAX_FRAME"]

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
MASK = {1: 0xFF, 2: 0xFFFF, 4: M32, 8: M64}
MIN_FRAME = 60                  # TRex pads shorter packets with zeros
MAX_FRAME = 9 * 1024 + 22       # TRex refuses longer packets
MAX_VAR_BYTES = 64              # StreamVm::svMAX_FLOW_VAR
MAX_OFFSET_CHANGE = 512         # StreamVm::svMAX_PACKET_OFFSET_CHANGE
CLIENT_UNLIMITED_MIN_PORT = 1025
L4_TYPE_UDP, L4_TYPE_TCP, L4_TYPE_IP = 11, 13, 17
PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 6, 17, 58

# ---------------------------------------------------------------- arithmetic helpers


def _inc_mod(lo, hi, cur, step):
    """cur + step within [lo, hi] (uint64 arithmetic); a restart consumes one unit."""
    left = (hi - cur) & M64
    if step <= left:
        return (cur + step) & M64, False
    return (lo + (step - left - 1)) & M64, True


def _dec_mod(lo, hi, cur, step):
    left = (cur - lo) & M64
    if step <= left:
        return (cur - step) & M64, False
    return (hi - (step - left - 1)) & M64, True


def _c_mod(a, b):
    """C's % for ints (truncates toward zero)."""
    if b == 0:
        raise ValueError("field engine: modulo by zero (empty range)")
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _ones_sum(data, start=0, end=None):
    """16-bit one's complement sum (folded, not complemented) of data[start:end], the
    words read big-endian and an odd last byte padded with a zero."""
    view = bytes(data[start:end])
    if len(view) % 2:
        view += b"\x00"
    words = array.array("H", view)
    if sys.byteorder == "little":
        words.byteswap()
    return _fold(sum(words))


def _fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def glibc_rand_r(seed):
    """glibc's rand_r(&seed) with seed given as an unsigned int: the value it returns."""
    nxt = seed & M32
    nxt = (nxt * 1103515245 + 12345) & M32
    result = (nxt // 65536) % 2048
    nxt = (nxt * 1103515245 + 12345) & M32
    result = (result << 10) ^ ((nxt // 65536) % 1024)
    nxt = (nxt * 1103515245 + 12345) & M32
    result = (result << 10) ^ ((nxt // 65536) % 1024)
    return result


def trex_random_seed(random_seed=0, thread_id=0, unix_time=0):
    """The state TRex's DP gives a stream's random generator: `random_seed` if non-zero,
    else rand_r(time(NULL)) (time given as `unix_time`), times (thread_id+1)*514229."""
    unique = (random_seed & M32) if random_seed else glibc_rand_r(unix_time)
    return (unique * ((thread_id + 1) * 514229)) & M32


def _rand16(state):
    state = (214013 * state + 2531011) & M32
    return state, (state >> 16) & 0x7FFF


def _rand32(state):
    state, hi = _rand16(state)
    state, lo = _rand16(state)
    return state, ((hi << 16) + lo) & M32


def _rand64(state):
    state, hi = _rand32(state)
    state, lo = _rand32(state)
    return state, ((hi << 32) + lo) & M64


def _rand_range(state, size, lo, hi):
    """A random value in [lo, hi] as the DP draws it for a variable of `size` bytes."""
    if size <= 2:
        state, r = _rand16(state)
        return state, lo + _c_mod(r, hi - lo + 1)
    if size == 4:
        state, r = _rand32(state)
        return state, lo + r % (((hi - lo) & M64) + 1)
    state, r = _rand64(state)
    if (hi - lo) & M64 == M64:
        return state, r
    return state, (lo + r % (((hi - lo) & M64) + 1)) & M64


@functools.lru_cache(maxsize=None)
def fastrand_average(target):
    """TRex's estimate of the mean of fastrand() % (target + 1): 10000 draws, seed 1."""
    state, total = 1, 0
    for _ in range(10000):
        state, r = _rand16(state)
        total += r % (target + 1)
    return total / 10000.0


# ---------------------------------------------------------------- JSON access


def _req(inst, key, kind=int):
    if key not in inst or inst[key] is None:
        raise ValueError(f"field engine: {inst.get('type')!r} instruction lacks {key!r}")
    v = inst[key]
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"field engine: {inst.get('type')!r}.{key} is not an integer: {v!r}")
    elif kind is str and not isinstance(v, str):
        raise ValueError(f"field engine: {inst.get('type')!r}.{key} is not a string: {v!r}")
    elif kind is bool and not isinstance(v, bool):
        raise ValueError(f"field engine: {inst.get('type')!r}.{key} is not a boolean: {v!r}")
    return v


def _uint(inst, key, bits):
    v = _req(inst, key)
    if not 0 <= v < (1 << bits):
        raise ValueError(f"field engine: {inst.get('type')!r}.{key}={v} is not a uint{bits}")
    return v


# ---------------------------------------------------------------- compile-time objects


class _FlowMan:
    """flow_var (StreamVmInstructionFlowMan)."""
    kind = "flow_var"

    def __init__(self, name, size, op, init, lo, hi, step, value_list, split, next_var):
        self.name, self.size, self.op = name, size, op
        self.value_list = value_list
        if value_list is None:
            self.init, self.min, self.max = init, lo, hi
            rng = self.range()
        else:
            self.init = 0 if op == "inc" else len(value_list) - 1
            self.min, self.max = 0, len(value_list) - 1
            rng = len(value_list)
        self.step = step % rng
        self.wa = step // rng
        self.split = split
        self.next_var = next_var or ""
        self.has_previous = False

    def range(self):
        r = (self.max - self.min + 1) & M64
        if r == 0:
            raise ValueError(f"field engine: variable {self.name!r} spans all 2**64 values")
        return r

    def need_split(self):
        return self.split and self.op != "random"

    def peek(self, skip, forward, carry=False):
        if self.op == "random":
            return self.init, False
        add = forward if self.op == "inc" else not forward
        nxt = (self.step * skip + (1 if carry else 0)) % self.range()
        return (_inc_mod if add else _dec_mod)(self.min, self.max, self.init, nxt)

    def update(self, phase, step_mul):
        """TRex's per-core update (only used by the tuple generator with phase 0)."""
        self.init = self.peek(phase, True)[0]
        step = self.wa * self.range() + self.step
        self.step = (step * step_mul) % self.range()
        self.wa = (step * step_mul) // self.range()

    def wrap_arounds(self, steps=1):
        return (self.wa * steps + (steps * self.step) // self.range()) & M32

    def bss_size(self):
        return self.size

    def bss_init(self):
        return (self.peek(1, False)[0] & MASK[self.size]).to_bytes(self.size, "little")


class _RandLimit:
    """flow_var_rand_limit (StreamVmInstructionFlowRandLimit)."""
    kind = "flow_var_rand_limit"
    op = "random_limit"

    def __init__(self, name, size, limit, lo, hi, seed, split, next_var):
        self.name, self.size, self.limit = name, size, limit
        self.min, self.max, self.seed = lo, hi, seed
        self.split = split
        self.next_var = next_var or ""
        self.has_previous = False

    def need_split(self):
        return self.split

    def bss_size(self):
        return 2 * self.size + 4

    def bss_init(self):
        return bytes(2 * self.size) + (self.seed & M32).to_bytes(4, "little")


class _Client:
    """tuple_flow_var (StreamVmInstructionFlowClient), constructed as for one core."""
    kind = "tuple_flow_var"

    def __init__(self, name, ip_min, ip_max, port_min, port_max, limit, flags):
        self.name, self.limit, self.flags = name, limit, flags
        if ip_max < ip_min or port_max < port_min:
            raise ValueError(f"field engine: tuple {name!r} has max below min")
        self.ip = _FlowMan("ip", 4, "inc", ip_min, ip_min, ip_max, 1, None, True, "")
        self.port = _FlowMan("port", 2, "inc", port_min, port_min, port_max, 1, None, True, "")
        # update(phase=0, step_mul=1)
        port_phase = self.ip.wrap_arounds(0)
        self.ip.update(0, 1)
        port_step_mul = self.ip.wrap_arounds() & 0xFFFF
        self.port.step = 1
        self.port.update(port_phase, port_step_mul)

    def bss_size(self):
        return 10

    def bss_init(self):
        ip, of = self.ip.peek(1, False, False)
        port, _ = self.port.peek(1, False, of)
        return ((ip & M32).to_bytes(4, "little") + (port & 0xFFFF).to_bytes(2, "little")
                + bytes(4))


# ---------------------------------------------------------------- DP operations
# Each op's run(engine, pkt) returns how many of the following ops to skip.


class _OpFlow:
    __slots__ = ("op", "size", "off", "min", "max", "step", "skip", "lst", "index")

    def __init__(self, var, off, skip):
        m = MASK[var.size]
        self.op, self.size, self.off, self.skip = var.op, var.size, off, skip
        self.min, self.max, self.step = var.min & m, var.max & m, var.step & m
        self.lst = None
        if var.value_list is not None:
            self.lst = [v & m for v in var.value_list]
            self.index = var.init & 0xFFFF

    def _no_wrap(self, diff):
        if self.size <= 2:                       # int promotion: a plain comparison
            return diff >= self.step
        return (diff & MASK[self.size]) >= self.step

    def run(self, e, pkt):
        size, off, m = self.size, self.off, MASK[self.size]
        bss = e.bss
        if self.op == "random":
            if self.lst is not None:
                e.rand_state, r = _rand16(e.rand_state)
                v = self.lst[r % len(self.lst)]
            else:
                e.rand_state, v = _rand_range(e.rand_state, size, self.min, self.max)
            bss[off:off + size] = (v & m).to_bytes(size, "little")
            return 0
        skip = 0
        if self.lst is None:
            cur = int.from_bytes(bss[off:off + size], "little")
            if self.op == "inc":
                if self.skip and self._no_wrap(self.max - cur):
                    skip = self.skip
                v = _inc_mod(self.min, self.max, cur, self.step)[0]
            else:
                if self.skip and self._no_wrap(cur - self.min):
                    skip = self.skip
                v = _dec_mod(self.min, self.max, cur, self.step)[0]
        else:
            n, idx = len(self.lst), self.index
            v = self.lst[idx]
            if self.op == "inc":
                if self.skip and idx >= self.step:
                    skip = self.skip
                nxt = idx + self.step
                if nxt >= n:
                    nxt -= n
            else:
                if self.skip and idx + self.step < n:
                    skip = self.skip
                nxt = idx - self.step
                if nxt < 0:
                    nxt = n + idx - self.step
            self.index = nxt & 0xFFFF
        bss[off:off + size] = (v & m).to_bytes(size, "little")
        return skip


class _OpRandLimit:
    __slots__ = ("size", "off", "limit", "min", "max", "seed", "skip")

    def __init__(self, var, off, skip):
        m = MASK[var.size]
        self.size, self.off, self.skip = var.size, off, skip
        self.limit, self.min, self.max = var.limit & m, var.min & m, var.max & m
        self.seed = var.seed & M32

    def run(self, e, pkt):
        size, off, bss = self.size, self.off, e.bss
        cnt = int.from_bytes(bss[off + size:off + 2 * size], "little")
        state = int.from_bytes(bss[off + 2 * size:off + 2 * size + 4], "little")
        if cnt == self.limit:
            state, cnt = self.seed, 0
        skip = self.skip if (self.skip and cnt != 0) else 0
        state, v = _rand_range(state, size, self.min, self.max)
        cnt = (cnt + 1) & MASK[size]
        bss[off:off + 2 * size + 4] = ((v & MASK[size]).to_bytes(size, "little")
                                       + cnt.to_bytes(size, "little")
                                       + state.to_bytes(4, "little"))
        return skip


class _OpClient:
    __slots__ = ("off", "unlimited", "min_ip", "max_ip", "step_ip", "init_ip", "min_port",
                 "max_port", "step_port", "init_port", "limit")

    def __init__(self, var, off):
        self.off = off
        self.unlimited = bool(var.flags & 1)
        self.min_ip, self.max_ip = var.ip.min & M32, var.ip.max & M32
        self.step_ip, self.init_ip = var.ip.step & M32, var.ip.init & M32
        self.min_port, self.max_port = var.port.min & 0xFFFF, var.port.max & 0xFFFF
        self.step_port, self.init_port = var.port.step & 0xFFFF, var.port.init & 0xFFFF
        self.limit = var.limit & M32

    def run(self, e, pkt):
        off, bss = self.off, e.bss
        ip = int.from_bytes(bss[off:off + 4], "little")
        port = int.from_bytes(bss[off + 4:off + 6], "little")
        fid = int.from_bytes(bss[off + 6:off + 10], "little")
        if self.unlimited:
            ip = (ip + 1) & M32
            if ip > self.max_ip:
                ip = self.min_ip
                port = (port + 1) & 0xFFFF
                if port == 0:
                    port = CLIENT_UNLIMITED_MIN_PORT
        else:
            ip, of = _inc_mod(self.min_ip, self.max_ip, ip, self.step_ip)
            ip &= M32
            port = _inc_mod(self.min_port, self.max_port, port, self.step_port)[0] & 0xFFFF
            if of:
                port = _inc_mod(self.min_port, self.max_port, port, 1)[0] & 0xFFFF
            if self.limit:
                fid = (fid + 1) & M32
                if fid > self.limit:
                    fid, ip, port = 1, self.init_ip, self.init_port
        bss[off:off + 10] = (ip.to_bytes(4, "little") + port.to_bytes(2, "little")
                             + fid.to_bytes(4, "little"))
        return 0


class _OpWrite:
    __slots__ = ("size", "var_off", "pkt_off", "add", "order")

    def __init__(self, size, var_off, pkt_off, add, big):
        self.size, self.var_off, self.pkt_off, self.add = size, var_off, pkt_off, add
        self.order = "big" if big else "little"

    def run(self, e, pkt):
        size = self.size
        v = int.from_bytes(e.bss[self.var_off:self.var_off + size], "little")
        v = (v + self.add) & MASK[size]
        pkt[self.pkt_off:self.pkt_off + size] = v.to_bytes(size, self.order)
        return 0


class _OpWriteMask:
    __slots__ = ("var_off", "var_size", "pkt_off", "cast", "mask", "shift", "add", "big")

    def __init__(self, var_off, var_size, pkt_off, cast, mask, shift, add, big):
        self.var_off, self.var_size, self.pkt_off, self.cast = var_off, var_size, pkt_off, cast
        self.mask, self.add, self.big = mask & M32, add, big
        shift &= 0xFF                                  # stored as int8_t
        self.shift = shift - 256 if shift > 127 else shift

    def run(self, e, pkt):
        v = int.from_bytes(e.bss[self.var_off:self.var_off + self.var_size], "little")
        v = (v + self.add) & M32
        if self.shift > 0:
            v = (v << (self.shift & 31)) & M32         # x86 masks the shift count
        elif self.shift < 0:
            v = v >> ((-self.shift) & 31)
        # big endian: the packet field has pkt_cast_size bytes; little endian: TRex
        # reads and writes as many bytes as the variable has
        width, order = (self.cast, "big") if self.big else (self.var_size, "little")
        o = self.pkt_off
        room = min(width, len(pkt) - o)       # TRex may touch bytes past the frame
        field = bytes(pkt[o:o + room]) + bytes(width - room)
        cur = int.from_bytes(field, order)
        new = ((cur & ~self.mask) | (v & self.mask)) & MASK[width]
        pkt[o:o + room] = new.to_bytes(width, order)[:room]
        return 0


class _OpFixIpv4:
    __slots__ = ("off",)

    def __init__(self, off):
        self.off = off

    def run(self, e, pkt):
        o = self.off
        pkt[o + 10:o + 12] = b"\x00\x00"
        hl = 20 if pkt[o] == 0x45 else (pkt[o] & 0x0F) * 4
        pkt[o + 10:o + 12] = ((~_ones_sum(pkt, o, o + hl)) & 0xFFFF).to_bytes(2, "big")
        return 0


class _OpFixIcmpv6:
    __slots__ = ("l2", "l3")

    def __init__(self, l2, l3):
        self.l2, self.l3 = l2, l3

    def run(self, e, pkt):
        ip6, icmp = self.l2, self.l2 + self.l3
        pkt[icmp + 2:icmp + 4] = b"\x00\x00"
        plen = int.from_bytes(pkt[ip6 + 4:ip6 + 6], "big")
        pseudo = _ones_sum(pkt, ip6 + 8, ip6 + 40) + plen + pkt[ip6 + 6]
        body = bytes(pkt[icmp:icmp + (plen & ~1)])
        body += bytes((plen & ~1) - len(body))         # past the frame: zeros here
        s = _fold(_fold(pseudo) + _ones_sum(body))
        pkt[icmp + 2:icmp + 4] = ((~s) & 0xFFFF).to_bytes(2, "big")
        return 0


class _OpFixHw:
    __slots__ = ("l2", "l3", "ipv4", "l4")

    def __init__(self, l2, l3, ipv4, l4):
        self.l2, self.l3, self.ipv4, self.l4 = l2, l3, ipv4, l4   # l4: "tcp"/"udp"/None

    def run(self, e, pkt):
        l2, l4off = self.l2, self.l2 + self.l3
        if self.ipv4:
            pkt[l2 + 10:l2 + 12] = b"\x00\x00"
            ihl = (pkt[l2] & 0x0F) * 4
            tot = int.from_bytes(pkt[l2 + 2:l2 + 4], "big")
            s = (_ones_sum(pkt, l2 + 12, l2 + 20) + pkt[l2 + 9]
                 + ((tot - ihl) & 0xFFFF))
        else:
            s = (_ones_sum(pkt, l2 + 8, l2 + 40) + int.from_bytes(pkt[l2 + 4:l2 + 6], "big")
                 + pkt[l2 + 6])
        at = l4off + (16 if self.l4 == "tcp" else 6)
        pkt[at:at + 2] = _fold(s).to_bytes(2, "big")
        e.hw = self
        return 0

    def complete(self, pkt):
        """What the NIC's offload (or TRex's software fallback) does at transmit."""
        l2, l4off = self.l2, self.l2 + self.l3
        if self.l4 is not None:
            raw = _ones_sum(pkt, l4off)
            cs = raw if raw == 0xFFFF else (~raw) & 0xFFFF
            at = l4off + (16 if self.l4 == "tcp" else 6)
            pkt[at:at + 2] = cs.to_bytes(2, "big")
        if self.ipv4 and pkt[l2 + 10:l2 + 12] == b"\x00\x00":
            hl = (pkt[l2] & 0x0F) * 4
            pkt[l2 + 10:l2 + 12] = ((~_ones_sum(pkt, l2, l2 + hl)) & 0xFFFF).to_bytes(2, "big")


class _OpTrim:
    __slots__ = ("off",)

    def __init__(self, off):
        self.off = off

    def run(self, e, pkt):
        e.new_size = int.from_bytes(e.bss[self.off:self.off + 2], "little")
        return 0


# ---------------------------------------------------------------- parsing (RPC side)


def _check_min_max(size, init, step, lo, hi):
    if step == 0:
        raise ValueError("field engine: VM: step cannot be 0")
    if hi < lo:
        raise ValueError(f"field engine: VM: max value {hi} is smaller than min value {lo}")
    if init < lo or init > hi:
        raise ValueError(f"field engine: VM: init value {init} is not in [{lo}, {hi}]")
    if size < 8 and max(init, lo, hi, step) > MASK[size]:
        raise ValueError(f"field engine: VM: a value is bigger than {MASK[size]}")


def _pad_range(lo, hi, step, op):
    pad = (hi - lo + 1) % step
    if pad == 0:
        return lo, hi
    step_pad = step - pad
    if op == "inc":
        if M64 - hi < step_pad:
            raise ValueError("field engine: VM: could not pad range to be a true cycle")
        hi += step_pad
    elif op == "dec":
        if lo < step_pad:
            raise ValueError("field engine: VM: could not pad range to be a true cycle")
        lo -= step_pad
    return lo, hi


def _size(inst):
    size = _req(inst, "size")
    if size not in (1, 2, 4, 8):
        raise ValueError(f"field engine: variable {inst.get('name')!r} has size {size}")
    return size


def _parse(inst):
    if not isinstance(inst, dict):
        raise ValueError(f"field engine: instruction is not an object: {inst!r}")
    t = inst.get("type")
    if t == "flow_var":
        name = _req(inst, "name", str)
        size = _size(inst)
        op = inst.get("op")
        if op not in ("inc", "dec", "random"):
            raise ValueError(f"field engine: variable {name!r} has op {op!r}")
        step = _uint(inst, "step", 64)
        split = inst.get("split_to_cores", True)
        nxt = inst.get("next_var") or ""
        vlist = inst.get("value_list")
        if vlist is None:
            init = _uint(inst, "init_value", 64)
            lo, hi = _uint(inst, "min_value", 64), _uint(inst, "max_value", 64)
            _check_min_max(size, init, step, lo, hi)
            lo, hi = _pad_range(lo, hi, step, op)
            return _FlowMan(name, size, op, init, lo, hi, step, None, split, nxt)
        if not isinstance(vlist, list) or not vlist:
            raise ValueError(f"field engine: variable {name!r} has an empty value_list")
        if step == 0:
            raise ValueError("field engine: VM: step cannot be 0")
        if step > len(vlist):
            raise ValueError("field engine: VM: step cannot be bigger than list size")
        if len(vlist) > 0xFFFF:
            raise ValueError("field engine: VM: value_list is longer than 65535")
        for v in vlist:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > MASK[size]:
                raise ValueError(f"field engine: value_list entry {v!r} does not fit {size} bytes")
        return _FlowMan(name, size, op, None, None, None, step, list(vlist), split, nxt)
    if t == "flow_var_rand_limit":
        name = _req(inst, "name", str)
        size = _size(inst)
        seed, limit = _uint(inst, "seed", 64), _uint(inst, "limit", 64)
        lo, hi = _uint(inst, "min_value", 64), _uint(inst, "max_value", 64)
        if limit < 1:
            raise ValueError(f"field engine: random variable {name!r} has limit 0")
        _check_min_max(size, lo, 1, lo, hi)
        return _RandLimit(name, size, limit, lo, hi, seed, inst.get("split_to_cores", True),
                          inst.get("next_var") or "")
    if t == "tuple_flow_var":
        return _Client(_req(inst, "name", str), _uint(inst, "ip_min", 32),
                       _uint(inst, "ip_max", 32), _uint(inst, "port_min", 16),
                       _uint(inst, "port_max", 16), _uint(inst, "limit_flows", 32),
                       _uint(inst, "flags", 16))
    if t == "write_flow_var":
        return ("write", _req(inst, "name", str), _uint(inst, "pkt_offset", 16),
                _req(inst, "add_value"), _req(inst, "is_big_endian", bool))
    if t == "write_mask_flow_var":
        return ("write_mask", _req(inst, "name", str), _uint(inst, "pkt_offset", 16),
                _uint(inst, "pkt_cast_size", 16) & 0xFF, _uint(inst, "mask", 32),
                _req(inst, "shift"), _req(inst, "add_value"), _req(inst, "is_big_endian", bool))
    if t == "fix_checksum_ipv4":
        return ("ipv4", _uint(inst, "pkt_offset", 16))
    if t == "fix_checksum_icmpv6":
        return ("icmpv6", _uint(inst, "l2_len", 16), _uint(inst, "l3_len", 16))
    if t == "fix_checksum_hw":
        return ("hw", _uint(inst, "l2_len", 16), _uint(inst, "l3_len", 16),
                _uint(inst, "l4_type", 16))
    if t == "trim_pkt_size":
        return ("trim", _req(inst, "name", str))
    raise ValueError(f"field engine: instruction type {t!r} is not implemented")


def _is_var(x):
    return isinstance(x, (_FlowMan, _RandLimit, _Client))


# ---------------------------------------------------------------- the compiler


class _Program:
    """A VM compiled for one packet length: bss image, ops, expected length."""

    def __init__(self, instructions, pkt):
        self.insts = [_parse(i) for i in instructions]
        self.pkt_len = len(pkt)
        self.has_random = any(isinstance(i, _FlowMan) and i.op == "random" for i in self.insts)
        self.change_size = any(isinstance(i, tuple) and i[0] == "trim" for i in self.insts)
        self._var_table()
        self.bss = self._bss()
        self.ops = self._program(pkt)

    # -- StreamVm::build_flow_var_table
    def _var_table(self):
        self.vars = {}                    # name -> (offset, size, instruction)
        off = 4 if self.has_random else 0
        if self.has_random:
            self.vars["___random___"] = (0, 4, None)
        for i, inst in enumerate(self.insts):
            if isinstance(inst, (_FlowMan, _RandLimit)):
                if isinstance(inst, _RandLimit):
                    lim = (1 << (8 * (1, 2, 4, 8).index(inst.size) + 8)) - 1
                    if inst.limit > lim:
                        raise ValueError(f"field engine: instruction {i}: limit {inst.limit} "
                                         f"is bigger than size {inst.size}")
                if inst.name in self.vars:
                    raise ValueError(f"field engine: instruction {i}: flow variable "
                                     f"{inst.name!r} already exists")
                self.vars[inst.name] = (off, inst.size, inst)
                inst.offset = off
                off += inst.bss_size()
            elif isinstance(inst, _Client):
                for suffix in (".ip", ".port", ".flow_limit"):
                    if inst.name + suffix in self.vars:
                        raise ValueError(f"field engine: instruction {i}: client variable "
                                         f"{inst.name!r} already exists")
                self.vars[inst.name + ".ip"] = (off, 4, inst)
                self.vars[inst.name + ".port"] = (off + 4, 2, inst)
                self.vars[inst.name + ".flow_limit"] = (off + 6, 4, inst)
                inst.offset = off
                off += 10
            if off > MAX_VAR_BYTES:
                raise ValueError(f"field engine: too many flow variables ({off} bytes, "
                                 f"at most {MAX_VAR_BYTES})")
        self.bss_size = off
        # packet size changes: clamp the variable to the packet
        self.expected_len = float(self.pkt_len)
        self.min_len = self.max_len = self.pkt_len
        for i, inst in enumerate(self.insts):
            if not (isinstance(inst, tuple) and inst[0] == "trim"):
                continue
            rec = self.vars.get(inst[1])
            if rec is None:
                raise ValueError(f"field engine: instruction {i}: packet size with no valid "
                                 f"flow variable name {inst[1]!r}")
            if rec[1] != 2:
                raise ValueError(f"field engine: instruction {i}: packet size change should "
                                 "point to a flow variable with size 2")
            var = rec[2]
            if not isinstance(var, _FlowMan):
                raise ValueError(f"field engine: instruction {i}: packet size change should "
                                 "point to a simple flow variable")
            n = self.pkt_len
            if var.value_list is None:
                var.max = min(var.max, n)
                var.min = min(var.min, n)
                if var.min >= var.max:
                    raise ValueError(f"field engine: instruction {i}: min packet size "
                                     f"{var.min} is bigger or eq to max packet size {var.max}")
                var.min = max(var.min, MIN_FRAME)
                if var.op == "random":
                    self.expected_len = var.min + fastrand_average((var.max - var.min) & 0xFFFF)
                else:
                    self.expected_len = (var.min + var.max) / 2.0
                self.min_len, self.max_len = var.min, var.max
            else:
                for v in var.value_list:
                    if v > n or v < MIN_FRAME:
                        raise ValueError(f"field engine: instruction {i}: packet size {v} in "
                                         f"value_list is bigger than {n} or smaller than 60")
                self.expected_len = sum(var.value_list) / len(var.value_list)
                self.min_len, self.max_len = min(var.value_list), max(var.value_list)
        # dependent variables
        for i, inst in enumerate(self.insts):
            if not isinstance(inst, (_FlowMan, _RandLimit)) or not inst.next_var:
                continue
            if i == len(self.insts) - 1:
                raise ValueError("field engine: last instruction in the list of "
                                 "instructions has next_var")
            nxt = self.insts[i + 1]
            if not isinstance(nxt, (_FlowMan, _RandLimit)):
                raise ValueError("field engine: next instruction isn't a variable or a "
                                 "repeatable random")
            if nxt.name != inst.next_var:
                raise ValueError("field engine: next instruction name does not match next_var")
            if nxt.need_split():
                raise ValueError("field engine: a variable that is being pointed at by some "
                                 "other variable must run on a single core "
                                 f"(set split_to_cores=False on {nxt.name!r})")
            nxt.has_previous = True

    # -- StreamVm::build_bss
    def _bss(self):
        bss = bytearray(4 if self.has_random else 0)
        for inst in self.insts:
            if _is_var(inst):
                bss += inst.bss_init()
        return bss

    # -- StreamVm::build_program
    def _program(self, pkt):
        n = len(self.insts)
        ops = [None] * n
        skip = 0
        max_field = 0
        var_cnt = ref_cnt = 0

        def lookup(i, name, what="packet write"):
            rec = self.vars.get(name)
            if rec is None:
                raise ValueError(f"field engine: instruction {i}: {what} with no valid flow "
                                 f"variable name {name!r}")
            return rec

        for i in range(n - 1, -1, -1):
            inst = self.insts[i]
            if not isinstance(inst, (_FlowMan, _RandLimit)):
                skip = 0
            if isinstance(inst, _FlowMan):
                var_cnt += 1
                ops[i] = _OpFlow(inst, inst.offset, skip)
                skip = skip + 1 if inst.has_previous else 0
            elif isinstance(inst, _RandLimit):
                var_cnt += 1
                ops[i] = _OpRandLimit(inst, inst.offset, skip)
                skip = skip + 1 if inst.has_previous else 0
            elif isinstance(inst, _Client):
                var_cnt += 1
                ops[i] = _OpClient(inst, inst.offset)
            elif inst[0] == "write":
                _, name, pkt_off, add, big = inst
                ref_cnt += 1
                off, size, _ = lookup(i, name)
                if pkt_off + size > self.pkt_len:
                    raise ValueError(f"field engine: instruction {i}: packet write of "
                                     f"{name!r} at {pkt_off}+{size} is beyond the "
                                     f"{self.pkt_len}-byte packet")
                max_field = max(max_field, pkt_off + size)
                ops[i] = _OpWrite(size, off, pkt_off, add, big)
            elif inst[0] == "write_mask":
                _, name, pkt_off, cast, mask, shift, add, big = inst
                ref_cnt += 1
                if cast not in (1, 2, 4):
                    raise ValueError(f"field engine: instruction {i}: cast size should be "
                                     f"1, 2 or 4, it is {cast}")
                off, size, _ = lookup(i, name)
                if pkt_off + cast > self.pkt_len:
                    raise ValueError(f"field engine: instruction {i}: packet write at "
                                     f"{pkt_off}+{cast} is beyond the {self.pkt_len}-byte "
                                     "packet")
                max_field = max(max_field, pkt_off + cast)
                if size == 8:                 # reads 4 bytes; +4 = the HIGH half on x86
                    size = 4
                    if big:
                        off += 4
                ops[i] = _OpWriteMask(off, size, pkt_off, cast, mask, shift, add, big)
            elif inst[0] == "ipv4":
                off = inst[1]
                if off + 20 > self.pkt_len:
                    raise ValueError(f"field engine: instruction {i}: fix ipv4 offset {off} "
                                     f"is too high for a {self.pkt_len}-byte packet")
                hl = max((pkt[off] & 0x0F) * 4, 20)
                if off + hl > self.pkt_len:
                    raise ValueError(f"field engine: instruction {i}: fix ipv4 offset {off} "
                                     f"plus {hl} is too high for a {self.pkt_len}-byte packet")
                max_field = max(max_field, off + hl)
                ops[i] = _OpFixIpv4(off)
            elif inst[0] == "icmpv6":
                _, l2, l3 = inst
                if l2 + 40 > self.pkt_len or l2 + l3 + 4 > self.pkt_len:
                    raise ValueError(f"field engine: instruction {i}: fix icmpv6 offsets "
                                     "beyond the packet")
                if pkt[l2] >> 4 != 6:
                    raise ValueError(f"field engine: instruction {i}: fix icmpv6 checksum "
                                     "works only with IPv6")
                if pkt[l2 + 6] != PROTO_ICMPV6:
                    raise ValueError(f"field engine: instruction {i}: fix icmpv6 checksum "
                                     "didn't find ICMPv6 layer, IPv6's next header type is "
                                     f"{pkt[l2 + 6]}")
                max_field = max(max_field, l2 + l3 + 4)
                ops[i] = _OpFixIcmpv6(l2, l3)
            elif inst[0] == "hw":
                ops[i], end = self._hw(i, inst, pkt)
                max_field = max(max_field, end)
            elif inst[0] == "trim":
                ref_cnt += 1
                off, size, _ = lookup(i, inst[1], "packet size")
                ops[i] = _OpTrim(off)
        if ref_cnt > 0 and var_cnt == 0:
            raise ValueError("field engine: it is not valid to have a VM program without a "
                             "variable or tuple generator")
        if max_field > MAX_OFFSET_CHANGE:
            raise ValueError(f"field engine: maximum offset is {max_field}, bigger than "
                             f"maximum {MAX_OFFSET_CHANGE}")
        return ops

    def _hw(self, i, inst, pkt):
        _, l2, l3, l4_type = inst
        is_ip = l4_type == L4_TYPE_IP
        if l2 < 14:
            raise ValueError(f"field engine: instruction {i}: fix hw offset l2 {l2} is "
                             "lower than 14")
        if not is_ip and l3 < 20:
            raise ValueError(f"field engine: instruction {i}: fix hw offset l3 {l3} is "
                             "lower than 20")
        total_l4 = l2 + l3
        if l2 + 20 > self.pkt_len:
            raise ValueError(f"field engine: instruction {i}: fix hw l2_len {l2} leaves no "
                             "IP header in the packet")
        version = pkt[l2] >> 4
        if version == 4:
            ihl = (pkt[l2] & 0x0F) * 4
            proto = pkt[l2 + 9]
            if is_ip:
                l3 = ihl
            else:
                if ihl != l3:
                    raise ValueError(f"field engine: instruction {i}: fix hw command IPv4 "
                                     f"header size is not valid {ihl}")
                if proto not in (PROTO_TCP, PROTO_UDP):
                    raise ValueError(f"field engine: instruction {i}: fix hw command L4 "
                                     "should be TCP or UDP")
            l4 = {PROTO_TCP: "tcp", PROTO_UDP: "udp"}.get(proto)
            ipv4 = True
        elif version == 6:
            ipv4 = False
            if l4_type == L4_TYPE_TCP:
                l4 = "tcp"
            elif l4_type == L4_TYPE_UDP:
                l4 = "udp"
            else:
                raise ValueError(f"field engine: instruction {i}: fix hw command offsets "
                                 "should be TCP or UDP for IPv6")
        else:
            raise ValueError(f"field engine: instruction {i}: fix hw command should work on "
                             "IPv4 or IPv6")
        hdr = {"tcp": 20, "udp": 8, None: 0}[l4]
        if total_l4 + hdr > self.pkt_len:
            raise ValueError(f"field engine: instruction {i}: fix hw command offsets "
                             f"{total_l4 + hdr} is too high relative to packet size "
                             f"{self.pkt_len}")
        if l4 is None and l2 + l3 + 8 > self.pkt_len:
            raise ValueError(f"field engine: instruction {i}: fix hw of a bare IPv4 packet "
                             "writes at L4 offset 6, beyond the packet")
        return _OpFixHw(l2, l3, ipv4, l4), total_l4 + hdr


# ---------------------------------------------------------------- public API


def _pad(base):
    base = bytes(base)
    if len(base) < 14 or len(base) > MAX_FRAME:
        raise ValueError(f"packet of {len(base)} bytes: TRex accepts 14 to {MAX_FRAME}")
    return base + bytes(MIN_FRAME - len(base)) if len(base) < MIN_FRAME else base


class FieldEngine:
    """One stream's field engine on one DP core.

    vm_json: the stream's `vm` ({"instructions": [...], "cache": N?}).
    seed: the stream's `random_seed` (0 or None: unset, see `unix_time`).
    base: the stream's packet (bytes, or the base64 string of the JSON); if omitted the
        program is compiled for the first packet given to `packet()`.
    thread_id: the DP core's thread id (0 with one core).
    unix_time: stands for TRex's time(NULL) when the seed is unset.
    """

    def __init__(self, vm_json, seed=None, base=None, *, thread_id=0, unix_time=0):
        if not isinstance(vm_json, dict):
            raise ValueError("field engine: vm is not an object")
        self.instructions = vm_json.get("instructions") or []
        self.cache_size = vm_json.get("cache", 0) or 0
        if not isinstance(self.cache_size, int) or not 0 <= self.cache_size <= 0xFFFF:
            raise ValueError(f"field engine: bad cache size {self.cache_size!r}")
        self.seed = seed or 0
        self.thread_id, self.unix_time = thread_id, unix_time
        self._prog = None
        self._cache = None
        self._cache_pos = 0
        self.sent = 0
        for inst in self.instructions:       # unknown types fail now, not on first packet
            _parse(inst)
        if base is not None:
            self._compile(_pad(base64.b64decode(base) if isinstance(base, str) else base))

    def _compile(self, base):
        self._base = base
        if not self.instructions:
            self._prog = False
            self.expected_len = float(len(base))
            return
        self._prog = _Program(self.instructions, base)
        self.expected_len = self._prog.expected_len
        self.bss = bytearray(self._prog.bss)
        if self._prog.has_random:
            self.bss[0:4] = trex_random_seed(self.seed, self.thread_id,
                                             self.unix_time).to_bytes(4, "little")

    # the shared generator lives in the first 4 bytes of the variables, as in TRex
    @property
    def rand_state(self):
        return int.from_bytes(self.bss[0:4], "little")

    @rand_state.setter
    def rand_state(self, value):
        if self._prog and self._prog.has_random:
            self.bss[0:4] = (value & M32).to_bytes(4, "little")

    def _run(self, base):
        pkt = bytearray(base)
        if not self._prog:
            return bytes(pkt)
        self.new_size = 0
        self.hw = None
        ops = self._prog.ops
        i, n = 0, len(ops)
        while i < n:
            i += 1 + ops[i].run(self, pkt)
        if self.new_size and self.new_size < len(pkt):
            del pkt[self.new_size:]
        if self.hw is not None:
            self.hw.complete(pkt)
        return bytes(pkt)

    def packet(self, base=None):
        """The next frame (no FCS).  `base` defaults to the packet compiled for; another
        base must have the same length (e.g. with the port's MACs applied)."""
        if base is not None:
            base = _pad(base64.b64decode(base) if isinstance(base, str) else base)
        if self._prog is None:
            if base is None:
                raise ValueError("field engine: no packet to compile the program for")
            self._compile(base)
        if base is None:
            base = self._base
        elif len(base) != len(self._base):
            raise ValueError(f"field engine: compiled for a {len(self._base)}-byte packet, "
                             f"given {len(base)} bytes")
        self.sent += 1
        if self.cache_size and self._prog:
            if self._cache is None:
                self._cache = [self._run(base) for _ in range(self.cache_size)]
            pkt = self._cache[self._cache_pos]
            self._cache_pos = (self._cache_pos + 1) % self.cache_size
            return pkt
        return self._run(base)

    def variables(self):
        """The current values of the variables by name (for inspection)."""
        if not self._prog:
            return {}
        out = {}
        for name, (off, size, _) in self._prog.vars.items():
            if name != "___random___":
                out[name] = int.from_bytes(self.bss[off:off + size], "little")
        return out


def expected_packet_length(vm_json, base):
    """The frame length TRex's rate conversion uses for this stream (before +4 FCS)."""
    return FieldEngine(vm_json, base=base).expected_len
