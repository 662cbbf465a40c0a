# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Python entry points to the C flow hash (pyx/hashing.pxd), for tests, `explain` and the
polarization simulator: the same inline functions the packet path runs."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset
from parse cimport pkt_t, parse, flow_key_t, build_key
from hashing cimport flow_key_hash, key_mask4
cimport numpy as cnp
import numpy as np
from hashing cimport hash_input, crc_key, finalize, bucket_of, KEY_MAX, KEY_WORDS
from includes.rte_hash_crc cimport rte_hash_crc

cnp.import_array()


def crc32c_raw(bytes data, uint32_t init=0xffffffff):
    """rte_hash_crc(data, len, init): the CRC32-C register, no final XOR."""
    return rte_hash_crc(<const char *>data, len(data), init)


def key_bytes(int family, bytes src, bytes dst, int proto, int sport, int dport,
              int ingress, uint32_t flow_label, uint32_t fields):
    cdef uint64_t kbuf[KEY_WORDS]
    if len(src) != (4 if family == 4 else 16) or len(dst) != len(src):
        raise ValueError("address length does not match the family")
    n = hash_input(<uint8_t *>kbuf, family, src, dst, proto, sport, dport, ingress,
                 flow_label, fields)
    return (<char *>kbuf)[:n]


def explain(int family, bytes src, bytes dst, int proto, int sport, int dport, int ingress,
            uint32_t flow_label, uint32_t fields, uint32_t seed):
    """(key, crc, hash) exactly as the packet path computes them."""
    key = key_bytes(family, src, dst, proto, sport, dport, ingress, flow_label, fields)
    c = crc_key(<const uint8_t *><char *>key, len(key))
    return key, c, finalize(c, seed)


cdef object crc_v4(cnp.uint32_t[::1] src, cnp.uint32_t[::1] dst, cnp.uint8_t[::1] proto,
                   cnp.uint16_t[::1] sport, cnp.uint16_t[::1] dport, uint32_t fields,
                   uint32_t init, bint finalized, uint32_t seed):
    """CRC32-C registers (from `init`) of many IPv4 hash keys, optionally finalized."""
    cdef Py_ssize_t i, n = src.shape[0]
    cdef uint64_t kbuf[KEY_WORDS]
    cdef uint8_t s[4]
    cdef uint8_t d[4]
    cdef uint32_t klen, c
    if not (dst.shape[0] == proto.shape[0] == sport.shape[0] == dport.shape[0] == n):
        raise ValueError("field arrays differ in length")
    out = np.empty(n, dtype=np.uint32)
    cdef cnp.uint32_t[::1] o = out
    with nogil:
        for i in range(n):
            s[0] = src[i] >> 24; s[1] = src[i] >> 16; s[2] = src[i] >> 8; s[3] = src[i]
            d[0] = dst[i] >> 24; d[1] = dst[i] >> 16; d[2] = dst[i] >> 8; d[3] = dst[i]
            klen = hash_input(<uint8_t *>kbuf, 4, s, d, proto[i], sport[i], dport[i], 0, 0,
                            fields)
            c = rte_hash_crc(<uint8_t *>kbuf, klen, init)
            o[i] = finalize(c, seed) if finalized else c
    return out


def hash_v4_many(src, dst, proto, sport, dport, uint32_t fields, uint32_t seed):
    """Flow hashes of many IPv4 5-tuples (addresses as host-order uint32)."""
    return crc_v4(src, dst, proto, sport, dport, fields, 0xffffffff, True, seed)


def buckets_many(cnp.uint32_t[::1] h, uint32_t n):
    out = np.empty(h.shape[0], dtype=np.uint32)
    cdef cnp.uint32_t[::1] o = out
    cdef Py_ssize_t i
    for i in range(h.shape[0]):
        o[i] = bucket_of(h[i], n)
    return out


def crc_v4_many(src, dst, proto, sport, dport, uint32_t fields,
                uint32_t init=0xffffffff):
    """Raw CRC32-C registers rte_hash_crc(key, 16, init) of many IPv4 keys, no finalizer.
    With init = a node seed this is the naive "seed as CRC initial value" hash that
    bench/polarization.py shows polarizing; with the default init, the crc of the contract."""
    return crc_v4(src, dst, proto, sport, dport, fields, init, False, 0)


def frame_hash(bytes frame, uint16_t ingress, uint32_t fields, uint32_t seed):
    """Parse a frame, build its flow key and hash it with flow_key_hash(), as the packet path
    does (IPv4 fast path included). None when the frame would be dropped by the parser."""
    cdef pkt_t p
    cdef uint64_t mask4[2]
    cdef flow_key_t k
    memset(&p, 0, sizeof(p))
    p.data = <uint8_t *><char *>frame
    p.len = len(frame)
    if parse(&p) != 0:
        return None
    key_mask4(fields, mask4)
    build_key(&p, 0, &k)
    return flow_key_hash(&k, ingress, p.flow_label, fields, mask4, seed)
