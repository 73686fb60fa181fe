#!/usr/bin/env python3
"""diagreq: send raw request lines to diagnosed's control socket and print each reply line.
usage: diagreq.py SOCKET LINE...   (each LINE sent as is, then one reply line read and printed)
       diagreq.py SOCKET --tail N LINE   (send LINE, print the reply and N more lines)
       diagreq.py SOCKET --raw BYTES_FILE (send the file's bytes, print every line until EOF)
       diagreq.py SOCKET --pct LINE...   (as the first form, each LINE percent-decoded to bytes
                                          first: %FF is the byte 0xff, %00 a NUL byte)
Exit 0 when every reply was read; 3 when the daemon closed the connection early."""
import socket
import sys
import urllib.parse


def main():
    path = sys.argv[1]
    args = sys.argv[2:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(path)
    f = s.makefile("rb")
    if args and args[0] == "--raw":
        with open(args[1], "rb") as fh:
            try:
                s.sendall(fh.read())
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon refused the rest (e.g. an oversized line): its reply is queued
        for line in f:
            sys.stdout.write(line.decode())
        return 0
    extra = 0
    decode = str.encode
    if args and args[0] == "--pct":
        decode = urllib.parse.unquote_to_bytes
        args = args[1:]
    if args and args[0] == "--tail":
        extra = int(args[1])
        args = args[2:]
    for req in args:
        s.sendall(decode(req) + b"\n")
        line = f.readline()
        if not line:
            return 3
        sys.stdout.write(line.decode())
        sys.stdout.flush()
    for _ in range(extra):
        line = f.readline()
        if not line:
            return 3
        sys.stdout.write(line.decode())
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
