#!/usr/bin/env python3
"""Stands in for systemd's notification socket: binds a datagram socket at
PATH (writable by the service user) and appends every sd_notify message
it receives to LOG, one line per field, so a test can wait for READY=1 and
STOPPING=1 without systemd as PID 1.

    notify-socket.py PATH LOG      # runs until killed; export NOTIFY_SOCKET=PATH
"""
import os
import socket
import sys


def main() -> None:
    path, log = sys.argv[1], sys.argv[2]
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o666)
    with open(log, "a", buffering=1) as out:
        out.write("LISTENING=1\n")
        while True:
            data = sock.recv(65536)
            for field in data.decode("utf-8", "replace").splitlines():
                out.write(field + "\n")


if __name__ == "__main__":
    main()
