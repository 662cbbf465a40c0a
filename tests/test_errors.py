"""Failures are reported through the one converter (pyx/errors.pxd) as
DataplaneError(what, errno, rte_strerror), the errno named symbolically (never a bare
number) in the message."""
from __future__ import annotations

import errno

import pytest

from dataplane.errors import DataplaneError


def test_eal_twice_is_ealready(eal):
    with pytest.raises(DataplaneError) as e:
        eal.eal_init(["dp-test", "-l", "0"])
    assert e.value.errno == errno.EALREADY
    assert str(e.value).endswith(f"(EALREADY, errno {errno.EALREADY})")
    assert "already initialized" in str(e.value)


def test_message_names_the_errno():
    e = DataplaneError("rte_lpm_create(vrf red)", errno.ENOMEM, "Cannot allocate memory")
    assert str(e) == "rte_lpm_create(vrf red): Cannot allocate memory (ENOMEM, errno 12)"
    odd = DataplaneError("x", 4242, "Unknown error 4242")
    assert str(odd) == "x: Unknown error 4242 (errno 4242)"
