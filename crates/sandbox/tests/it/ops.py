# Runs each operation given as an argument and prints one line per
# operation: "ok" or the errno name (EACCES, EROFS, ...). Used by the
# sandbox tests as the program run inside the sandbox.
import ctypes
import errno
import os
import socket
import sys

FAMILIES = {
    "inet": socket.AF_INET,
    "inet6": socket.AF_INET6,
    "netlink": socket.AF_NETLINK,
    "packet": socket.AF_PACKET,
    "unix": socket.AF_UNIX,
}


def run(op):
    kind, _, arg = op.partition(":")
    if kind == "write":
        with open(arg, "w") as f:
            f.write("x")
    elif kind == "append":
        with open(arg, "a") as f:
            f.write("x")
    elif kind == "read":
        with open(arg, "rb") as f:
            f.read(16)
    elif kind == "mkdir":
        os.mkdir(arg)
    elif kind == "unlink":
        os.unlink(arg)
    elif kind == "truncate":
        os.truncate(arg, 0)
    elif kind == "rename":
        src, _, dst = arg.partition(":")
        os.rename(src, dst)
    elif kind == "symlink":
        target, _, link = arg.partition(":")
        os.symlink(target, link)
    elif kind == "socket":
        family, _, kind_ = arg.partition(":")
        type_ = socket.SOCK_DGRAM if kind_ == "dgram" else socket.SOCK_STREAM
        socket.socket(FAMILIES[family], type_).close()
    elif kind == "socketpair":
        a, b = socket.socketpair()
        a.sendall(b"ping")
        assert b.recv(4) == b"ping"
    elif kind == "connect":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", int(arg)))
        s.close()
    elif kind == "connect-fd":
        fd, _, port = arg.partition(":")
        s = socket.socket(fileno=int(fd))
        s.connect(("127.0.0.1", int(port)))
        s.close()
    elif kind == "chmod":
        mode, _, path = arg.partition(":")
        os.chmod(path, int(mode, 8))
    elif kind == "fchmod":
        mode, _, path = arg.partition(":")
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fchmod(fd, int(mode, 8))
        finally:
            os.close(fd)
    elif kind == "create":
        mode, _, path = arg.partition(":")
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, int(mode, 8)))
    elif kind == "tmpfile":
        mode, _, path = arg.partition(":")
        os.close(os.open(path, os.O_TMPFILE | os.O_WRONLY, int(mode, 8)))
    elif kind == "mknod":
        mode, _, path = arg.partition(":")
        os.mknod(path, 0o100000 | int(mode, 8))
    elif kind == "openat2":
        libc = ctypes.CDLL(None, use_errno=True)
        how = ctypes.create_string_buffer(24)  # flags, mode, resolve: zero
        fd = libc.syscall(437, -100, arg.encode(), how, 24)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "openat2")
        os.close(fd)
    elif kind == "io_uring_setup":
        libc = ctypes.CDLL(None, use_errno=True)
        params = ctypes.create_string_buffer(120)
        fd = libc.syscall(425, 1, params)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "io_uring_setup")
        os.close(fd)
    else:
        raise SystemExit(f"unknown op {op}")


for op in sys.argv[1:]:
    try:
        run(op)
        print("ok", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
