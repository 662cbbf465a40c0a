"""The control socket of `dataplane run` (SPEC §10, docs/control.md).

A Unix stream socket, mode 0600, served by one thread of the forwarder's process: one
JSON object per line in each direction, several clients at once. A peer whose
SO_PEERCRED uid is neither the owner's nor root gets one refusal line and is
disconnected. A malformed or oversized request gets an error reply; nothing a client
sends stops forwarding (the workers never wait for this thread; a change waits for them).
"""
from __future__ import annotations

import errno
import json
import os
import selectors
import socket
import struct
import threading
from pathlib import Path

from . import flows as fl
from .config.compile import NEIGH_NONE
from .limits import NH_GROUP, VNET_COUNTERS
from .live import ChangeError, Live

MAX_REQUEST = 1 << 20          # bytes in one request line
MAX_CLIENTS = 64


def default_socket(node: str) -> str:
    """/run/dataplane/<node>.sock as root, else $XDG_RUNTIME_DIR/dataplane/<node>.sock
    (or /tmp/dataplane-<uid>/ when XDG_RUNTIME_DIR is unset)."""
    if os.geteuid() == 0:
        base = "/run/dataplane"
    else:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        base = os.path.join(xdg, "dataplane") if xdg else f"/tmp/dataplane-{os.getuid()}"
    return os.path.join(base, f"{node}.sock")


def peer_uid(conn: socket.socket) -> int:
    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", cred)[1]


class Client:
    def __init__(self, conn):
        self.conn, self.buf, self.out = conn, b"", b""
        self.discard = False        # inside an oversized request: drop to its newline


class ControlServer:
    def __init__(self, fw, path: str, owner_uid: int | None = None):
        self.fw, self.path = fw, path
        self.live = Live(fw)
        fw.live = self.live
        self.owner = os.geteuid() if owner_uid is None else owner_uid
        self.sel = selectors.DefaultSelector()
        self.sock = None
        self.thread = None
        self.stopping = False
        self.requests = self.refused = self.errors = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        p = Path(self.path)
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if p.exists() or p.is_symlink():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
                raise OSError(errno.EADDRINUSE, f"{self.path}: another forwarder listens "
                                                "there (--socket PATH to choose another)")
            except (ConnectionRefusedError, FileNotFoundError):
                p.unlink()                      # stale: its forwarder is gone
            finally:
                probe.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)                   # created 0600: no window with wider rights
        try:
            s.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        s.listen(16)
        s.setblocking(False)
        self.sock = s
        self.sel.register(s, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        if self.thread is not None:
            self.thread.join(timeout=5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    # ---------------------------------------------------------------- the loop

    def _serve(self) -> None:
        while not self.stopping:
            for key, events in self.sel.select(timeout=0.1):
                try:
                    if key.data is None:
                        self._accept()
                    elif events & selectors.EVENT_READ:
                        self._read(key.data)
                    if key.data is not None and events & selectors.EVENT_WRITE:
                        self._flush(key.data)
                except Exception as e:             # never let a client stop the server
                    self.errors += 1
                    if key.data is not None:
                        self._reply(key.data, {"ok": False, "error": f"internal: {e!r}"})

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        uid = peer_uid(conn)
        if uid not in (self.owner, 0):
            self.refused += 1
            try:
                conn.sendall(json.dumps({"ok": False, "error": f"permission denied: uid "
                                         f"{uid} is neither the owner ({self.owner}) nor "
                                         "root"}).encode() + b"\n")
            finally:
                conn.close()
            return
        if len(self.sel.get_map()) > MAX_CLIENTS:
            conn.sendall(b'{"ok": false, "error": "too many clients"}\n')
            conn.close()
            return
        conn.setblocking(False)
        self.sel.register(conn, selectors.EVENT_READ, Client(conn))

    def _close(self, c: Client) -> None:
        self.sel.unregister(c.conn)
        c.conn.close()

    def _read(self, c: Client) -> None:
        try:
            data = c.conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(c)
            return
        if c.discard:
            if b"\n" not in data:
                return
            data = data.split(b"\n", 1)[1]
            c.discard = False
        c.buf += data
        while b"\n" in c.buf:
            line, c.buf = c.buf.split(b"\n", 1)
            if line.strip():
                self._reply(c, self.handle_line(line))
        if len(c.buf) > MAX_REQUEST:
            # answered at once; the rest of it, up to its newline, is dropped unread
            self.errors += 1
            c.buf, c.discard = b"", True
            self._reply(c, {"ok": False, "error": f"request longer than {MAX_REQUEST} "
                                                   "bytes: ignored"})

    def _reply(self, c: Client, obj: dict) -> None:
        c.out += json.dumps(obj, default=str).encode() + b"\n"
        self._flush(c)

    def _flush(self, c: Client) -> None:
        if c.conn.fileno() < 0:
            return
        try:
            n = c.conn.send(c.out)
            c.out = c.out[n:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            c.out = b""
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
        try:
            self.sel.modify(c.conn, want, c)
        except (KeyError, ValueError):
            pass

    # ---------------------------------------------------------------- requests

    def handle_line(self, line: bytes) -> dict:
        self.requests += 1
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError) as e:
            self.errors += 1
            return {"ok": False, "error": f"not a JSON object: {e}"}
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            self.errors += 1
            return {"ok": False, "error": 'a request is {"cmd": NAME, ...}'}
        fn = getattr(self, "cmd_" + req["cmd"].replace("-", "_"), None)
        if fn is None:
            self.errors += 1
            return {"ok": False, "error": f"unknown cmd {req['cmd']!r}; commands: "
                                          + ", ".join(sorted(COMMANDS))}
        try:
            return {"ok": True, "result": fn(req)}
        except ChangeError as e:
            self.errors += 1
            return {"ok": False, "error": "; ".join(e.errors), "errors": e.errors}
        except (KeyError, TypeError, ValueError) as e:
            self.errors += 1
            return {"ok": False, "error": f"{req['cmd']}: bad request: {e}"}

    def cmd_stats(self, req):
        return self.fw.stats()

    def cmd_vif(self, req):
        s = self.fw.stats()
        out = []
        for p in self.fw.cfg.ports:
            c = s["ports"][p.name]
            out.append({"index": p.index, "name": p.name, "vrf": p.vrf, "mode": p.mode,
                        "mac": p.mac.hex(":"), "devargs": p.devargs, "rx": c["rx"],
                        "tx": c["tx"], "drops": {k: v for k, v in c["drops"].items() if v},
                        "mirrored": c["mirrored"], "mirror_dropped": c["mirror_dropped"],
                        "mirror_tx": c["mirror_tx"],
                        **{v: c[v] for v in VNET_COUNTERS}, "dpdk": c["dpdk"]})
        return out

    def cmd_dropstats(self, req):
        s = self.fw.stats()
        return {"total": s["drops"],
                "ports": {n: {k: v for k, v in p["drops"].items() if v}
                          for n, p in s["ports"].items()},
                "workers": [{"worker": w["worker"], **{k: v for k, v in w["drops"].items()
                                                       if v}} for w in s["workers"]]}

    def cmd_nh(self, req):
        live, control = self.live, self.fw.control
        names = {i: n for n, i in live.nh_index.items()}
        neigh = self.fw.core.neighbors()
        nhs = []
        for i, t in enumerate(control.tables.nexthops):
            row = {"id": i, "name": names[i], "port": self.fw.cfg.ports[t.port].name,
                   "mac": t.eth[:6].hex(":"), "labels": [w >> 12 for w in t.push],
                   "state": "static"}
            if t.neigh != NEIGH_NONE:          # resolved by ARP / ND (docs/virtual-networks.md §6)
                _, ip, mac, state = neigh[t.neigh]
                row.update(mac=mac.hex(":") if mac else "-", state=state, ip=ip)
            nhs.append(row)
        groups = {}
        for g in self.fw.cfg.groups:
            slots = live.slots[g.name]
            table = control.group_table(g.index)
            counts = self.fw.core.group_counters(g.index)
            buckets = ([int((table == i).sum()) for i in range(len(slots))]
                       if table is not None else [0] * len(slots))
            total_w = sum(w for _, w, present in slots if present)
            n_b = len(table) if table is not None else g.buckets
            groups[g.name] = {"n_buckets": g.buckets, "members": [
                {"member": i, "nexthop": nh, "weight": w if present else 0,
                 "state": "removed" if not present else "active" if w else "drain",
                 "configured": (w / total_w if present and total_w else 0.0),
                 "realised": buckets[i] / n_b if n_b else 0.0, "buckets": buckets[i],
                 "packets": counts[i] if i < len(counts) else 0}
                for i, (nh, w, present) in enumerate(slots)]}
        return {"nexthops": nhs, "groups": groups}

    def cmd_rt(self, req):
        if req.get("family", "inet") == "bridge":
            return self.bridge(req.get("vrf"))
        live = self.live
        names = {i: n for n, i in live.nh_index.items()}
        gnames = {g.index: g.name for g in self.fw.cfg.groups}
        vrfs = [v for v in self.fw.cfg.vrfs if req.get("vrf") in (None, v.name)]
        if not vrfs:
            raise ValueError(f"no vrf {req.get('vrf')!r}")
        out = {}
        for v in vrfs:
            routes = self.fw.control.routes(v.index)
            out[v.name] = sorted(
                ({"prefix": str(p), "via": gnames[i & ~NH_GROUP] if i & NH_GROUP
                  else names[i], "group": bool(i & NH_GROUP)} for p, i in routes.items()),
                key=lambda r: (":" in r["prefix"], r["prefix"]))
        return out

    def bridge(self, vrf):
        """The bridge tables (docs/virtual-networks.md §3), vRouter's `rt --family bridge`
        columns: MAC, flags (S static, L learned), port, stats (frames bridged to it)."""
        cfg = self.fw.cfg
        vrfs = [v for v in cfg.vrfs if vrf in (None, v.name)]
        if not vrfs:
            raise ValueError(f"no vrf {vrf!r}")
        out = {v.name: [] for v in vrfs}
        for index, mac, port, kind, hits in self.fw.core.bridge_table():
            name = cfg.vrfs[index].name
            if name in out:
                out[name].append({"mac": mac.hex(":"), "flags": "S" if kind == "static" else "L",
                                  "port": cfg.ports[port].name, "stats": hits})
        return out

    def cmd_mpls(self, req):
        return [{"label": r.label, "action": r.action, "labels": list(r.labels),
                 "via": r.via, "vrf": r.vrf, "pseudowire": r.pseudowire}
                for r in self.fw.cfg.mpls.lfib]

    def cmd_flow(self, req):
        if req.get("flush"):
            self.fw.core.flow_flush()
            return {"flushed": True}
        flows = fl.ordered(self.fw.core.flows())       # a snapshot while workers run
        for i, f in enumerate(flows):
            f["index"] = i
        if req.get("get") is not None:
            return flows[int(req["get"])]
        sel = fl.match(flows, req.get("match"), req.get("port"), req.get("proto"),
                       req.get("vrf"))
        limit = int(req.get("limit", 1000))
        return {"total": len(flows), "matched": len(sel), "flows": sel[:limit]}

    def cmd_explain(self, req):
        from .config import load_text
        from .explain import explain
        import yaml
        cfg = load_text(yaml.safe_dump(self.live.doc, sort_keys=False), self.fw.cfg.path)
        e = explain(cfg, req["src"], req["dst"], int(req.get("proto", 6)),
                    int(req.get("sport", 0)), int(req.get("dport", 0)), req.get("in_port"),
                    req.get("vrf"), int(req.get("flow_label", 0)))
        return e.__dict__

    def cmd_group(self, req):
        return self.live.group(req["group"], req["action"], req["nexthop"],
                               req.get("weight"))

    def cmd_route(self, req):
        return self.live.route(req["action"], req["vrf"], req["prefix"], req.get("via"))

    def cmd_reload(self, req):
        return self.live.reload(req["text"], req.get("path", "<reload>"))

    def cmd_server(self, req):
        return {"requests": self.requests, "errors": self.errors, "refused": self.refused,
                "changes": self.live.changes, "version": self.fw.core.version,
                "socket": self.path}


COMMANDS = {n[4:] for n in dir(ControlServer) if n.startswith("cmd_")}
