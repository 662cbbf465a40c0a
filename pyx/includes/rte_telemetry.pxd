# DPDK 22.11 LTS: rte_telemetry.h (application commands on the telemetry socket,
# /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2, read by usertools' dpdk-telemetry.py).
# Replies: one rte_tel_data, a dict (at most RTE_TEL_MAX_DICT_ENTRIES entries, names of
# [A-Za-z0-9_/] only) or an array; a container added with keep=0 is freed by the library
# after the reply is written. The whole reply is one JSON text of at most 16 KiB
# (MAX_OUTPUT_LEN in telemetry.c): what does not fit is left out.
from libc.stdint cimport uint64_t

cdef extern from "rte_telemetry.h" nogil:
    enum:
        RTE_TEL_MAX_STRING_LEN          # 128: a name or string value, NUL included
        RTE_TEL_MAX_SINGLE_STRING_LEN
        RTE_TEL_MAX_DICT_ENTRIES        # 256
        RTE_TEL_MAX_ARRAY_ENTRIES       # 512

    struct rte_tel_data:
        pass

    enum rte_tel_value_type:
        RTE_TEL_STRING_VAL
        RTE_TEL_INT_VAL                 # signed 32-bit
        RTE_TEL_U64_VAL
        RTE_TEL_CONTAINER

    # runs in a telemetry client thread (no GIL): return < 0 for a `null` reply
    ctypedef int (*telemetry_cb)(const char *cmd, const char *params,
                                 rte_tel_data *info) noexcept nogil

    int rte_telemetry_register_cmd(const char *cmd, telemetry_cb fn, const char *help)

    int rte_tel_data_start_array(rte_tel_data *d, rte_tel_value_type type)
    int rte_tel_data_start_dict(rte_tel_data *d)
    int rte_tel_data_string(rte_tel_data *d, const char *str)
    int rte_tel_data_add_array_string(rte_tel_data *d, const char *str)
    int rte_tel_data_add_array_int(rte_tel_data *d, int x)
    int rte_tel_data_add_array_u64(rte_tel_data *d, uint64_t x)
    int rte_tel_data_add_array_container(rte_tel_data *d, rte_tel_data *val, int keep)
    int rte_tel_data_add_dict_string(rte_tel_data *d, const char *name, const char *val)
    int rte_tel_data_add_dict_int(rte_tel_data *d, const char *name, int val)
    int rte_tel_data_add_dict_u64(rte_tel_data *d, const char *name, uint64_t val)
    int rte_tel_data_add_dict_container(rte_tel_data *d, const char *name,
                                        rte_tel_data *val, int keep)
    rte_tel_data *rte_tel_data_alloc()
    void rte_tel_data_free(rte_tel_data *data)
