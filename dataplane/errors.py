"""The project's one exception type for DPDK failures."""


class DataplaneError(RuntimeError):
    """A DPDK call failed: carries errno, rte_strerror() text and what was being done."""

    def __init__(self, what: str, errno: int, strerror: str):
        self.what, self.errno, self.strerror = what, errno, strerror
        super().__init__(f"{what}: {strerror} (errno {errno})")
