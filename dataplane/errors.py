"""The project's one exception type for DPDK failures."""
import errno as _errno


class DataplaneError(RuntimeError):
    """A DPDK call failed: carries errno, rte_strerror() text and what was being done;
    its message names the errno symbolically (ENOMEM, errno 12)."""

    def __init__(self, what: str, errno: int, strerror: str):
        self.what, self.errno, self.strerror = what, errno, strerror
        name = _errno.errorcode.get(errno)
        code = f"{name}, errno {errno}" if name else f"errno {errno}"
        super().__init__(f"{what}: {strerror} ({code})")
