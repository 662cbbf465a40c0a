# Virtual-network tables (docs/virtual-networks.md): what pyx/bridge.pxd and pyx/neigh.pxd
# read. Loaded once at start (a VN's shape does not change live); the bridge table's
# learned entries and the neighbours' MACs are written by the workers themselves.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from includes.rte_hash cimport rte_hash
from includes.rte_mbuf cimport rte_mbuf
from includes.rte_mempool cimport rte_mempool

cdef enum:
    FWD_L3 = 0
    FWD_L2 = 1
    FWD_L2L3 = 2
    ACT_BRIDGE = 4             # pkt_t.act: bridged by the destination MAC
    ACT_ARP = 5                # an ARP frame: answered, learned from, consumed or bridged
    ACT_ND = 6                 # an NS / NA: likewise
    BT_STATIC = 1              # bridge entry flags (data word bits 16..)
    BT_LEARNED = 2
    MAX_GW = 16                # gateway addresses per VRF
    XSTAGE = 1024              # extra frames one burst / tick may stage: a burst's
                               # floods make at most BURST * (MAX_PORTS - 1) = 992
    X_FLOOD = 0                # staged: a flood copy (counted flooded)
    X_HELD = 1                 # a held packet released (counted tx)
    X_REQUEST = 2              # an ARP request / NS the forwarder made (counted arp_sent)
    NEIGH_NONE = 0xffffffff

cdef extern from *:
    """
    #define NEIGH_VALID (1ULL << 63)
    """
    const uint64_t NEIGH_VALID

ctypedef struct addr_t:
    uint8_t family             # 4 or 6
    uint8_t plen
    uint8_t addr[16]           # IPv4 in the first 4 bytes

ctypedef struct host_t:
    # an address the VRF knows on a port (bind / AAP): proxy answers with mac
    addr_t a
    uint8_t mac[6]
    uint16_t port

ctypedef struct pair_t:
    # a binding's allowed (MAC, prefix)
    addr_t a
    uint8_t mac[6]

ctypedef struct vn_vrf_t:
    uint8_t fwd                # FWD_*
    uint8_t flood_uu           # flood unknown unicast
    uint8_t learn              # mac_learning
    uint8_t has_gw_mac
    uint8_t gw_mac[6]
    uint16_t n_ports
    uint16_t ports[32]         # MAX_PORTS: the VRF's ports in port order (flood list)
    uint16_t n_gw
    addr_t gw[MAX_GW]          # gateway.ip: the forwarder's own addresses
    uint32_t n_hosts
    host_t *hosts
    uint64_t aging_tsc

ctypedef struct neigh_t:
    # a (port, ip) of next hops without a MAC; shared by the workers
    uint64_t mac               # NEIGH_VALID | the MAC's 6 bytes (memory order) or 0
    uint64_t confirmed         # clock of the last confirmation
    uint64_t next_req          # clock of the next request (worker 0 sends them)
    uint16_t port
    uint8_t family
    uint8_t ip[16]
    uint8_t src[16]            # its requests' source address

ctypedef struct vnet_t:
    rte_hash *bridge           # (VRF, MAC) → port | flags << 16
    uint64_t *seen             # per bridge position: clock of its last use
    uint64_t *hits             # per bridge position: frames bridged to it
    uint32_t capacity
    uint16_t nvrfs
    vn_vrf_t *vrfs
    uint32_t n_neigh
    neigh_t *neigh
    uint64_t reach_tsc         # neighbors.reachable_time
    uint64_t retry_tsc         # neighbors.retry
    uint16_t queue             # neighbors.queue: held packets per neighbour and worker
    rte_mempool *pool          # requests are allocated from it

ctypedef struct held_t:
    # one worker's held packets (per neighbour: queue slots)
    rte_mbuf **m
    uint16_t *in_port
    uint8_t *n                 # per neighbour: packets held
    uint32_t total
