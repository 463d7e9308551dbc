#!/usr/bin/env python3
"""A sending node written from docs/node-protocol.md alone, in Python
(standard library only): it sends FRAMES (default 10) camera-sized frames
on output "frames" through sealed memfd regions, with the frame number and
CRC-32 in the metadata, the way examples/camera/camera does, reusing
regions the daemon reports DROPPED. The Go viewer checks them.
"""
import fcntl
import json
import mmap
import os
import socket
import struct
import sys
import time
import zlib

REGISTER, OUTPUT, REGION = 0x01, 0x02, 0x03
READY, DROPPED, ERROR, STOP = 0x81, 0x89, 0x8B, 0x87
PROTOCOL_VERSION = 2
SIZE = 1920 * 1080 * 3


def s16(text):
    b = text.encode()
    return struct.pack("<H", len(b)) + b


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def send(self, frame_type, body=b"", fd=None):
        frame = struct.pack("<IB", 1 + len(body), frame_type) + body
        if fd is None:
            self.sock.sendall(frame)
            return
        sent = self.sock.sendmsg([frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
        if sent < len(frame):
            self.sock.sendall(frame[sent:])

    def read_frame(self, block=True):
        """Returns a frame body, or None when not blocking and none is ready."""
        self.sock.setblocking(block)
        try:
            while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack_from("<I", self.buf)[0]:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise EOFError("daemon closed the connection")
                self.buf += data
        except BlockingIOError:
            return None
        finally:
            self.sock.setblocking(True)
        (n,) = struct.unpack_from("<I", self.buf)
        body, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
        return body


def new_region(size):
    fd = os.memfd_create("adora-py", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    return fd, mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)


def main():
    cfg = json.loads(os.environ["ADORA_NODE_CONFIG"])
    frames = int(os.environ.get("FRAMES", "10"))
    conn = Conn(cfg["socket"])
    conn.send(REGISTER, struct.pack("<H", PROTOCOL_VERSION) + s16(cfg["dataflow_id"]) + s16(cfg["node_id"]) + s16(cfg["secret"]))
    body = conn.read_frame()
    if body[0] != READY:
        sys.exit("registration refused")
    regions, free, next_id = {}, [], 0
    for i in range(frames):
        # Take in DROPPED frames: those regions may be reused.
        while True:
            body = conn.read_frame(block=not free and len(regions) >= 4)
            if body is None:
                break
            if body[0] == DROPPED:
                (n,) = struct.unpack_from("<I", body, 1)
                free.extend(struct.unpack_from("<%dI" % n, body, 5))
            elif body[0] in (STOP, ERROR):
                return
        if free:
            rid = free.pop(0)
        else:
            next_id += 1
            rid = next_id
            fd, mem = new_region(SIZE)
            regions[rid] = mem
            conn.send(REGION, struct.pack("<IQ", rid, SIZE), fd=fd)
            os.close(fd)
        mem = regions[rid]
        mem[:] = bytes([i % 256]) * SIZE
        params = json.dumps({"frame": i, "crc32": zlib.crc32(mem)}).encode()
        meta = struct.pack("<q", time.time_ns()) + s16("image/rgb8") + struct.pack("<I", len(params)) + params
        conn.send(OUTPUT, s16("frames") + meta + struct.pack("<BIQQ", 1, rid, 0, SIZE))
        time.sleep(0.01)
    print("python camera: sent %d frames in %d regions" % (frames, len(regions)), flush=True)


if __name__ == "__main__":
    main()
