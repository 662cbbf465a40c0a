"""dataplane: a DPDK-accelerated userspace IPv4/IPv6/MPLS forwarder."""
__version__ = "0.1.0"
