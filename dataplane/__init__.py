"""dataplane: a DPDK-accelerated userspace IPv4/IPv6/MPLS forwarder."""
import os as _os
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # no BLAS threads spinning beside the worker lcore
__version__ = "0.1.0"
