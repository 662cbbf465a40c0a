"""TRex STL profile: 64-byte UDP, flows varied over source address and ports.

    start -f trex_profiles/udp_flows.py -m 100% --port 0 -t flows=100000
"""
from trex_stl_lib.api import (STLFlowVM, STLPktBuilder, STLProfile, STLStream,
                              STLTXCont)
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether


class UdpFlows:
    def get_streams(self, direction=0, flows=65536, **kwargs):
        base = Ether() / IP(src="100.64.0.1", dst="10.2.0.1", ttl=64) / UDP(sport=1024,
                                                                             dport=5000)
        pad = max(0, 60 - len(base)) * b"\0"
        vm = STLFlowVM()
        vm.var(name="src", min_value="100.64.0.1", max_value="100.127.255.254",
               size=4, op="random")
        vm.var(name="sport", min_value=1024, max_value=1024 + max(1, flows // 64),
               size=2, op="inc")
        vm.write(fv_name="src", pkt_offset="IP.src")
        vm.write(fv_name="sport", pkt_offset="UDP.sport")
        vm.fix_chksum()
        return [STLStream(packet=STLPktBuilder(pkt=base / pad, vm=vm), mode=STLTXCont())]


def register():
    return UdpFlows()
