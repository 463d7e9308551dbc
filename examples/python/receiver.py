#!/usr/bin/env python3
"""A node written from docs/node-protocol.md alone, in Python (stdlib only).

It registers with the daemon, maps shared-memory regions read-only (zero
copy), acknowledges inputs, releases drop tokens and prints one line per
event: "received <input> <len> <first 16 bytes hex>" for inputs. It ends on
STOP, ALL_INPUTS_CLOSED or when the daemon goes away.
"""
import json
import mmap
import os
import socket
import struct
import sys

REGISTER, OUTPUT, REGION, ACK, RELEASE, CLOSE_OUTPUTS = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
READY, INPUT, INPUT_CLOSED, INPUT_RECOVERED = 0x81, 0x82, 0x83, 0x84
NODE_RESTARTED, NODE_FAILED, STOP, ALL_INPUTS_CLOSED = 0x85, 0x86, 0x87, 0x88
DROPPED, REGION_CLOSED, ERROR = 0x89, 0x8A, 0x8B
PROTOCOL_VERSION = 2


class Conn:
    """Framed unix stream socket; descriptors queue up in arrival order."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.fds = []

    def _fill(self):
        data, anc, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(16 * 4))
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(payload) // 4
                self.fds.extend(struct.unpack("%di" % n, payload[: 4 * n]))
        if not data:
            raise EOFError("daemon closed the connection")
        self.buf += data

    def read_frame(self):
        while len(self.buf) < 4:
            self._fill()
        (n,) = struct.unpack_from("<I", self.buf)
        while len(self.buf) < 4 + n:
            self._fill()
        body, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
        return body

    def send(self, frame_type, body=b""):
        self.sock.sendall(struct.pack("<IB", 1 + len(body), frame_type) + body)


class Reader:
    def __init__(self, body):
        self.b, self.i = body, 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError("truncated frame")
        v = self.b[self.i : self.i + n]
        self.i += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def str(self):
        return self.take(self.u16()).decode()

    def strs(self):
        return [self.str() for _ in range(self.u16())]


def s16(text):
    b = text.encode()
    return struct.pack("<H", len(b)) + b


def main():
    cfg = json.loads(os.environ["ADORA_NODE_CONFIG"])
    conn = Conn(cfg["socket"])
    conn.send(REGISTER, struct.pack("<H", PROTOCOL_VERSION) + s16(cfg["dataflow_id"]) + s16(cfg["node_id"]) + s16(cfg["secret"]))
    first = Reader(conn.read_frame())
    kind = first.u8()
    if kind != READY:
        sys.exit("registration refused: " + (first.str() if kind == ERROR else hex(kind)))
    ack_every = max(1, first.u32() // 2)
    regions, pending_acks = {}, 0
    print("python receiver ready", flush=True)
    while True:
        r = Reader(conn.read_frame())
        kind = r.u8()
        if kind == REGION:
            rid, size = r.u32(), r.u64()
            fd = conn.fds.pop(0)
            regions[rid] = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
            os.close(fd)
        elif kind == REGION_CLOSED:
            regions.pop(r.u32()).close()
        elif kind == INPUT:
            input_id = r.str()
            r.u64()  # timestamp
            r.str()  # type info
            r.take(r.u32())  # parameters
            if r.u8() == 0:
                data = r.take(r.u32())
                token = None
            else:
                rid, off, length = r.u32(), r.u64(), r.u64()
                data = memoryview(regions[rid])[off : off + length]  # zero copy
                token = r.u64()
            print("received %s %d %s" % (input_id, len(data), bytes(data[:16]).hex()), flush=True)
            if token is not None:
                del data
                conn.send(RELEASE, struct.pack("<IQ", 1, token))
            pending_acks += 1
            if pending_acks >= ack_every or not conn.buf:
                conn.send(ACK, struct.pack("<I", pending_acks))
                pending_acks = 0
        elif kind in (INPUT_CLOSED, INPUT_RECOVERED):
            print("%s %s" % ("input closed" if kind == INPUT_CLOSED else "input recovered", r.str()), flush=True)
        elif kind in (NODE_RESTARTED, NODE_FAILED):
            print("source %s %s" % (r.str(), "restarted" if kind == NODE_RESTARTED else "failed"), flush=True)
        elif kind in (STOP, ALL_INPUTS_CLOSED):
            print("python receiver done", flush=True)
            return
        elif kind == ERROR:
            sys.exit("daemon error: " + r.str())


if __name__ == "__main__":
    main()
