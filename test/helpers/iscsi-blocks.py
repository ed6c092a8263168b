#!/usr/bin/env python3
"""Reads or writes blocks of an iSCSI LUN through libiscsi (libiscsi.so.7, Debian's libiscsi7).

libiscsi-bin has no dd-like tool, so the storage tests use this to write data through iSCSI and
read it back through iSCSI (READ(10)/WRITE(10), CHAP login). Only the library's C API is used.

  iscsi-blocks.py read  INITIATOR PORTAL IQN LUN LBA COUNT   -> prints the blocks as hex
  iscsi-blocks.py write INITIATOR PORTAL IQN LUN LBA HEX      -> writes the bytes of HEX
The CHAP user and secret come from the environment (ISCSI_USER, ISCSI_SECRET), not argv.
Exit 0 on success; 1 with the reason on stderr.
"""
import ctypes
import os
import sys

BLOCK = 512
SESSION_NORMAL = 2  # enum iscsi_session_type
HEADER_DIGEST_NONE_CRC32C = 1  # enum iscsi_header_digest (libiscsi's default)


class ScsiIovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def main(argv):
    if len(argv) != 7 or argv[0] not in ("read", "write"):
        print(__doc__, file=sys.stderr)
        return 2
    op, initiator, portal, iqn, lun, lba, arg = argv
    lun, lba = int(lun), int(lba)
    lib = ctypes.CDLL("libiscsi.so.7")
    lib.iscsi_create_context.restype = ctypes.c_void_p
    lib.iscsi_get_error.restype = ctypes.c_char_p
    lib.iscsi_read10_iov_sync.restype = ctypes.c_void_p
    lib.iscsi_write10_iov_sync.restype = ctypes.c_void_p
    ctx = ctypes.c_void_p(lib.iscsi_create_context(initiator.encode()))
    if not ctx:
        print("iscsi_create_context failed", file=sys.stderr)
        return 1

    def fail(what):
        print(f"{what}: {lib.iscsi_get_error(ctx).decode(errors='replace')}", file=sys.stderr)
        return 1

    lib.iscsi_set_targetname(ctx, iqn.encode())
    lib.iscsi_set_session_type(ctx, SESSION_NORMAL)
    lib.iscsi_set_header_digest(ctx, HEADER_DIGEST_NONE_CRC32C)
    user, secret = os.environ.get("ISCSI_USER", ""), os.environ.get("ISCSI_SECRET", "")
    if user and lib.iscsi_set_initiator_username_pwd(ctx, user.encode(), secret.encode()) != 0:
        return fail("set CHAP")
    if lib.iscsi_full_connect_sync(ctx, portal.encode(), lun) != 0:
        return fail("login")
    try:
        if op == "read":
            size = int(arg) * BLOCK
            buf = ctypes.create_string_buffer(size)
            iov = ScsiIovec(ctypes.cast(buf, ctypes.c_void_p), size)
            task = lib.iscsi_read10_iov_sync(ctx, lun, lba, size, BLOCK, 0, 0, 0, 0, 0, ctypes.byref(iov), 1)
        else:
            data = bytes.fromhex(arg)
            if len(data) % BLOCK:
                print("write: the data must be whole blocks", file=sys.stderr)
                return 1
            buf = ctypes.create_string_buffer(data, len(data))
            iov = ScsiIovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
            task = lib.iscsi_write10_iov_sync(ctx, lun, lba, None, len(data), BLOCK, 0, 0, 0, 0, 0, ctypes.byref(iov), 1)
        if not task:
            return fail(op)
        # struct scsi_task begins with `int status`: 0 is SCSI GOOD.
        status = ctypes.cast(task, ctypes.POINTER(ctypes.c_int))[0]
        lib.scsi_free_scsi_task(ctypes.c_void_p(task))
        if status != 0:
            return fail(f"{op}: SCSI status {status}")
        if op == "read":
            sys.stdout.write(buf.raw.hex())
        return 0
    finally:
        lib.iscsi_logout_sync(ctx)
        lib.iscsi_destroy_context(ctx)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
