# SPDX-License-Identifier: MIT
"""py_mmap.py -- Python's mmap module writing a file, run under the shim (or, with --control, without it).

Writes records through mmap.mmap into a sparse file, checks with FIEMAP,
before any flush, whether the blocks under them are allocated and written,
grows the mapping with resize() (ftruncate + mremap), flushes, and verifies
the file by reading it back with plain file reads.

Usage: py_mmap.py DIR [--control]
Under the shim every written page must be allocated at once; in the control
run (no shim) they must not be (delayed allocation), which shows the check
can tell the difference.
"""
import ctypes
import fcntl
import mmap
import os
import struct
import sys

PAGE = 4096
SIZE = 4 << 20
GROWN = 8 << 20
FS_IOC_FIEMAP = 0xC020660B
BAD = 0x4 | 0x2 | 0x800  # FIEMAP_EXTENT_DELALLOC | UNKNOWN | UNWRITTEN


def allocated(fd, off, length):
    """True if every byte of [off, off+length) is in an allocated, written extent (no sync asked)."""
    count = 64
    hdr = struct.pack("=QQIIII", off, length, 0, 0, count, 0)
    buf = bytearray(hdr + bytes(56 * count))
    fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
    mapped = struct.unpack_from("=I", buf, 20)[0]
    at, end = off, off + length
    for i in range(mapped):
        logical, _phys, ext_len = struct.unpack_from("=QQQ", buf, 32 + 56 * i)
        flags = struct.unpack_from("=I", buf, 32 + 56 * i + 40)[0]
        if logical + ext_len <= at:
            continue
        if logical > at or flags & BAD:
            break
        at = logical + ext_len
    return at >= end


def record(i):
    return ("record %06d " % i).encode() * 8


def shim_mode(m):
    """The shim's syncmap_mode() of the mapping, or None without the shim."""
    lib = ctypes.CDLL(None)
    try:
        fn = lib.syncmap_mode
    except AttributeError:
        return None
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    return fn(ctypes.c_void_p(addr))


def main():
    directory = sys.argv[1]
    control = "--control" in sys.argv[2:]
    path = os.path.join(directory, "py_mmap.dat")
    offsets = list(range(0, SIZE, 3 * PAGE)) + list(range(SIZE, GROWN, 5 * PAGE))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, SIZE)
    m = mmap.mmap(fd, SIZE)  # MAP_SHARED, PROT_READ | PROT_WRITE
    mode = shim_mode(m)
    if control:
        assert mode is None, "control run has the shim loaded"
    else:
        assert mode == 2, "the shim did not take the mapping: mode %r" % (mode,)
    first = [o for o in offsets if o < SIZE]
    for n, off in enumerate(first):
        rec = record(n)
        m[off:off + len(rec)] = rec
    now = sum(allocated(fd, off, PAGE) for off in first)
    print("  %d of %d pages written through mmap.mmap are allocated before any flush" % (now, len(first)))
    if control:
        assert now < len(first), "control: every page allocated without the shim?"
    else:
        assert now == len(first), "pages written but not allocated: %d" % (len(first) - now)
    m.resize(GROWN)
    for n, off in enumerate(offsets[len(first):], start=len(first)):
        rec = record(n)
        m[off:off + len(rec)] = rec
    if not control:
        assert shim_mode(m) == 2, "mode after resize"
        grown = [o for o in offsets if o >= SIZE]
        assert all(allocated(fd, o, PAGE) for o in grown), "grown part: pages not allocated"
    m.flush()
    m.close()
    os.close(fd)
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) == GROWN, "file size %d" % len(data)
    for n, off in enumerate(offsets):
        rec = record(n)
        assert data[off:off + len(rec)] == rec, "record %d at %d differs" % (n, off)
    print("  %d records verified by reading the file back; resize() to %d MiB kept them"
          % (len(offsets), GROWN >> 20))
    print("py_mmap: ok")


if __name__ == "__main__":
    main()
