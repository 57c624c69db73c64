"""Run netlink and nftables calls inside a named network namespace from the calling thread.

The agent itself runs inside its router's namespace and never needs this. Tests and benchmarks
run in the root namespace and drive a router namespace they made: a netlink socket belongs to
the namespace its thread was in when the socket was created, so entering the namespace just for
the socket's creation is enough. Python 3.11 has no os.setns, hence libc's.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Inside the block, this thread is in namespace `name` (`ip netns` name); None: stay put."""
    if name is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)   # never created here: a missing name fails
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
