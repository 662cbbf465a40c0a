"""Linux network namespaces over veth pairs for tests/test_netns.py.

Two namespaces, each with one end of a veth pair; the other ends stay in the root
namespace, where `dataplane run` opens them as `net_af_packet` ports:

    ns1: <ns1 dev> 10.1.0.2/24 ══ <root dev 1>  net_af_packet0 ┐
                                                                ├ dataplane (one l3 VRF)
    ns2: <ns2 dev> 10.2.0.2/24 ══ <root dev 2>  net_af_packet1 ┘

Every name carries the test process's pid, so parallel runs never meet; `Topology.destroy`
is safe to call on a half-built topology and after a failure. Every command has a timeout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

CMD_TIMEOUT = 10


def sh(*args, timeout: float = CMD_TIMEOUT, check: bool = True,
       input: str | None = None) -> subprocess.CompletedProcess:
    """Run a command (no shell); on failure raise with its output."""
    argv = [str(a) for a in args]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"timed out after {timeout} s: {' '.join(argv)}\n"
                             f"stdout: {e.stdout}\nstderr: {e.stderr}") from None
    if check and r.returncode != 0:
        raise AssertionError(f"exit status {r.returncode}: {' '.join(argv)}\n"
                             f"stdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def ns_argv(ns: str, *args) -> list[str]:
    return ["ip", "netns", "exec", ns, *map(str, args)]


def in_ns(ns: str, *args, **kw) -> subprocess.CompletedProcess:
    return sh(*ns_argv(ns, *args), **kw)


@dataclass
class Side:
    """One namespace and its veth pair."""
    ns: str            # namespace name
    dev: str           # veth end inside the namespace
    root_dev: str      # veth end in the root namespace (the forwarder's port)
    address: str       # the namespace's address, with length ("10.1.0.2/24")
    gateway: str       # its default gateway (the forwarder's address on this link)
    mac: str           # the namespace end's MAC

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]


@dataclass
class Topology:
    sides: list[Side]
    created_ns: list[str] = field(default_factory=list)
    created_links: list[str] = field(default_factory=list)

    @classmethod
    def plan(cls, tag: str) -> "Topology":
        """Names for this run: `tag` is short (interface names are at most 15 bytes)."""
        return cls([Side(ns=f"dpn{tag}s{i}", dev=f"dpn{tag}n{i}", root_dev=f"dpn{tag}r{i}",
                         address=f"10.{i}.0.2/24", gateway=f"10.{i}.0.1",
                         mac=f"02:{i}0:00:00:00:02")
                    for i in (1, 2)])

    def create(self, static_neigh: dict[int, str] | None = None) -> None:
        """Build both sides. static_neigh: {side index: forwarder MAC} to add a permanent
        neighbour entry for that side's gateway (else the kernel resolves it by ARP)."""
        for i, s in enumerate(self.sides):
            assert len(s.dev) <= 15 and len(s.root_dev) <= 15, s
            sh("ip", "netns", "add", s.ns)
            self.created_ns.append(s.ns)
            sh("ip", "link", "add", s.root_dev, "type", "veth", "peer", "name", s.dev)
            self.created_links.append(s.root_dev)
            # root end: no IPv6 (no RS/MLD/ND noise into the forwarder), no ARP answers
            # and no IPv4 forwarding by the root kernel, up
            sysctl(None, f"net.ipv6.conf.{s.root_dev}.disable_ipv6", 1)
            sysctl(None, f"net.ipv4.conf.{s.root_dev}.arp_ignore", 8)
            sysctl(None, f"net.ipv4.conf.{s.root_dev}.forwarding", 0)
            sh("ip", "link", "set", "dev", s.root_dev, "up")
            # namespace end
            sh("ip", "link", "set", "dev", s.dev, "netns", s.ns)
            in_ns(s.ns, "ip", "link", "set", "dev", "lo", "up")
            in_ns(s.ns, "ip", "link", "set", "dev", s.dev, "address", s.mac)
            sysctl(s.ns, f"net.ipv6.conf.{s.dev}.disable_ipv6", 1)
            # the trap: with TX checksum offload a veth hands TCP/UDP over with partial
            # checksums (CHECKSUM_PARTIAL), which af_packet delivers as they are and the
            # forwarder would forward unfixed; with it off, segmentation (TSO) goes too
            in_ns(s.ns, "ethtool", "-K", s.dev, "tx", "off")
            in_ns(s.ns, "ip", "address", "add", s.address, "dev", s.dev)
            in_ns(s.ns, "ip", "link", "set", "dev", s.dev, "up")
            in_ns(s.ns, "ip", "route", "add", "default", "via", s.gateway, "dev", s.dev)
            if static_neigh and i in static_neigh:
                in_ns(s.ns, "ip", "neigh", "replace", s.gateway, "lladdr", static_neigh[i],
                      "nud", "permanent", "dev", s.dev)

    def destroy(self) -> list[str]:
        """Delete what create() made (namespaces first: that deletes their veth ends and
        so the pairs); returns the errors, never raises."""
        errors = []
        for ns in reversed(self.created_ns):
            r = sh("ip", "netns", "del", ns, check=False)
            if r.returncode:
                errors.append(f"ip netns del {ns}: {r.stderr.strip()}")
        for dev in reversed(self.created_links):
            if os.path.exists(f"/sys/class/net/{dev}"):
                r = sh("ip", "link", "del", dev, check=False)
                if r.returncode and os.path.exists(f"/sys/class/net/{dev}"):
                    errors.append(f"ip link del {dev}: {r.stderr.strip()}")
        self.created_ns.clear()
        self.created_links.clear()
        return errors

    def neighbours(self, i: int) -> list[dict]:
        """`ip -j neigh show dev DEV` in side i's namespace."""
        s = self.sides[i]
        return json.loads(in_ns(s.ns, "ip", "-j", "neigh", "show", "dev", s.dev).stdout or "[]")


def sysctl(ns: str | None, key: str, value) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    if ns is None:
        with open(path, "w") as f:
            f.write(str(value))
    else:
        in_ns(ns, "sh", "-c", f"echo {value} > {path}")


# ---------------------------------------------------------------- a TCP transfer

# Run in the receiving namespace: accept one connection, read an 8-byte length and that
# many bytes into RECV_FILE, answer with the SHA-256 of what it read (32 bytes), then the
# content of SEND_FILE (8-byte length first), then close.
SERVER = r"""
import hashlib, socket, struct, sys
host, port, recv_file, send_file, timeout = sys.argv[1:6]
def exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = c.recv(min(1 << 16, n - len(buf)))
        if not chunk:
            raise SystemExit(f"server: connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen(1)
s.settimeout(float(timeout))
print("listening", flush=True)
c, peer = s.accept()
c.settimeout(float(timeout))
(n,) = struct.unpack("!Q", exact(c, 8))
data = exact(c, n)
open(recv_file, "wb").write(data)
reply = open(send_file, "rb").read()
c.sendall(hashlib.sha256(data).digest() + struct.pack("!Q", len(reply)) + reply)
c.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()
print(f"server: received {n} bytes from {peer[0]}, sent {len(reply)}", flush=True)
"""

# Run in the sending namespace: connect, send SEND_FILE, read the digest into DIGEST_FILE
# and the server's bytes into RECV_FILE.
CLIENT = r"""
import socket, struct, sys, time
host, port, send_file, recv_file, digest_file, timeout = sys.argv[1:7]
def exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = c.recv(min(1 << 16, n - len(buf)))
        if not chunk:
            raise SystemExit(f"client: connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)
data = open(send_file, "rb").read()
t0 = time.monotonic()
c = socket.create_connection((host, int(port)), timeout=float(timeout))
c.sendall(struct.pack("!Q", len(data)) + data)
digest = exact(c, 32)
(n,) = struct.unpack("!Q", exact(c, 8))
reply = exact(c, n)
c.close()
open(digest_file, "wb").write(digest)
open(recv_file, "wb").write(reply)
print(f"client: sent {len(data)} bytes, received {n} in {time.monotonic() - t0:.2f} s",
      flush=True)
"""


# Run in a namespace (`ping` may not be installed): COUNT ICMP echo requests to DST over
# a raw socket, one at a time, each waiting up to TIMEOUT s for its reply (same id,
# sequence and payload, from DST); prints a line per reply and a summary; exit status 0
# when every request was answered.
PING = r"""
import os, socket, struct, sys, time
dst, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def csum(b):
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident, received = os.getpid() & 0xFFFF, 0
for seq in range(1, count + 1):
    payload = os.urandom(56)
    pkt = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    pkt = pkt[:2] + struct.pack("!H", csum(pkt)) + pkt[4:]
    t0 = time.monotonic()
    s.sendto(pkt, (dst, 0))
    end = t0 + timeout
    while (left := end - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            data, addr = s.recvfrom(4096)
        except socket.timeout:
            break
        ihl = (data[0] & 15) * 4
        typ, code, _, i, sq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if (typ, code, i, sq, addr[0]) == (0, 0, ident, seq, dst) and \
                data[ihl + 8:] == payload and csum(data[ihl:]) == 0:
            received += 1
            print(f"reply from {dst}: seq={seq} ttl={data[8]} "
                  f"time={(time.monotonic() - t0) * 1000:.2f} ms", flush=True)
            break
    else:
        print(f"no reply for seq={seq}", flush=True)
    time.sleep(0.1)
print(f"{count} transmitted, {received} received")
sys.exit(0 if received == count else 1)
"""


def python_in_ns(ns: str, code: str, *args) -> list[str]:
    return ns_argv(ns, sys.executable, "-c", code, *args)
