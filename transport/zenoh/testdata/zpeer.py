#!/usr/bin/env python3
"""Python Zenoh counterpart for the Go interop tests.

Reads one JSON object from argv[1] and acts:
  mode       "peer" | "client" | "router"
  gossip     enable gossip scouting (default false)
  listen     list of endpoints (optional)
  connect    list of endpoints (optional)
  connect_timeout_ms  connect/timeout_ms (optional; 0: open returns even
             when a connect endpoint refuses us)
  usrpwd     transport/auth/usrpwd (optional): {"user", "password"} to
             present when dialling, "dictionary" {user: password} to
             accept (written to a temporary dictionary_file)
  action     "sub"    print each sample as a JSON line on stdout
             "pub"    publish count samples of size bytes on key
             "keys"   after a line on stdin, put one sample per key in keys
                      (payload: the key), then delete keys[0]
             "get"    after a line on stdin, query key and print the time
                      it took and the number of replies
             "echo"   subscribe to key; answer each sample whose payload
                      starts with "ping" by putting "pong" + the rest on
                      the sample's own key
             "ordered" subscribe to key; payloads start with a publisher
                      number and a message number (4 bytes each, big-endian);
                      check that each publisher's numbers arrive 0, 1, 2, ...
                      and print {"count", "errors", "first_error"} once
                      expect samples arrived, and at each line on stdin
             "serve"  just run (a router)
             "intersect" print [a, b, intersects] for each pair in pairs
Prints {"open_ms": N} and then "READY" once the session is open and
declared. Runs until stdin
closes (sub/serve), or until done (pub/intersect).
"""
import hashlib
import json
import os
import sys
import tempfile
import time

import zenoh


TEMP = []  # dictionary files, removed once the session is open


def config(spec):
    c = zenoh.Config()
    c.insert_json5("mode", json.dumps(spec.get("mode", "peer")))
    c.insert_json5("scouting/multicast/enabled", "false")
    c.insert_json5("scouting/gossip/enabled", json.dumps(spec.get("gossip", False)))
    c.insert_json5("listen/endpoints", json.dumps(spec.get("listen", [])))
    c.insert_json5("connect/endpoints", json.dumps(spec.get("connect", [])))
    if "connect_timeout_ms" in spec:
        c.insert_json5("connect/timeout_ms", json.dumps(spec["connect_timeout_ms"]))
    auth = spec.get("usrpwd")
    if auth:
        if "user" in auth:
            c.insert_json5("transport/auth/usrpwd/user", json.dumps(auth["user"]))
            c.insert_json5("transport/auth/usrpwd/password", json.dumps(auth["password"]))
        if "dictionary" in auth:
            f = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
            for u, p in auth["dictionary"].items():
                f.write("%s:%s\n" % (u, p))
            f.close()
            TEMP.append(f.name)
            c.insert_json5("transport/auth/usrpwd/dictionary_file", json.dumps(f.name))
    return c


# Results go to the original stdout; zenoh's own logs (which go to fd 1)
# are sent to stderr.
OUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)


def emit(obj):
    OUT.write(json.dumps(obj) + "\n")
    OUT.flush()


def main():
    spec = json.loads(sys.argv[1])
    zenoh.init_log_from_env_or("error")
    action = spec["action"]
    if action == "intersect":
        out = []
        for a, b in spec["pairs"]:
            out.append([a, b, zenoh.KeyExpr(a).intersects(zenoh.KeyExpr(b))])
        emit(out)
        return
    t0 = time.monotonic()
    try:
        session = zenoh.open(config(spec))
    finally:
        for name in TEMP:
            os.unlink(name)
    emit({"open_ms": (time.monotonic() - t0) * 1000})
    if action == "sub":
        def on_sample(s):
            p = s.payload.to_bytes()
            att = s.attachment.to_bytes() if s.attachment is not None else None
            emit({"key": str(s.key_expr), "len": len(p),
                  "sha": hashlib.sha256(p).hexdigest(),
                  "head": p[:32].decode("latin-1"),
                  "att": att.decode("latin-1") if att is not None else None,
                  "kind": str(s.kind)})
        sub = session.declare_subscriber(spec["key"], on_sample)
        emit("READY")
        sys.stdin.read()
        sub.undeclare()
    elif action == "pub":
        # block rather than drop under congestion (zenoh drops by default)
        pub = session.declare_publisher(spec["key"], congestion_control=zenoh.CongestionControl.BLOCK)
        emit("READY")
        # wait for the go side to tell us it is subscribed
        sys.stdin.readline()
        size = spec.get("size", 0)
        for i in range(spec.get("count", 1)):
            head = ("%d:" % i).encode()
            body = (head + bytes((j * 7 + i) % 251 for j in range(max(0, size - len(head)))))[:max(size, len(head))]
            pub.put(body, attachment=("att-%d" % i).encode())
        time.sleep(spec.get("linger", 0.5))
        emit("DONE")
    elif action == "keys":
        emit("READY")
        sys.stdin.readline()
        for k in spec["keys"]:
            session.put(k, k.encode(), congestion_control=zenoh.CongestionControl.BLOCK)
        session.delete(spec["keys"][0])
        time.sleep(spec.get("linger", 0.5))
        emit("DONE")
    elif action == "get":
        emit("READY")
        sys.stdin.readline()
        t0 = time.monotonic()
        replies = list(session.get(spec["key"], timeout=10.0))
        emit({"get_ms": (time.monotonic() - t0) * 1000, "replies": len(replies)})
    elif action == "echo":
        def on_ping(s):
            p = s.payload.to_bytes()
            if p.startswith(b"ping"):
                session.put(str(s.key_expr), b"pong" + p[4:],
                            congestion_control=zenoh.CongestionControl.BLOCK)
        sub = session.declare_subscriber(spec["key"], on_ping)
        emit("READY")
        sys.stdin.read()
        sub.undeclare()
    elif action == "ordered":
        import threading
        lock = threading.Lock()
        st = {"count": 0, "errors": 0, "first_error": None}
        nxt = {}
        expect = spec["expect"]

        def report():
            with lock:
                emit(dict(st))

        def on_sample(s):
            p = s.payload.to_bytes()
            with lock:
                g, i = int.from_bytes(p[0:4], "big"), int.from_bytes(p[4:8], "big")
                want = nxt.get(g, 0)
                if i != want:
                    st["errors"] += 1
                    if st["first_error"] is None:
                        st["first_error"] = "publisher %d: message %d, want %d" % (g, i, want)
                nxt[g] = i + 1
                st["count"] += 1
                done = st["count"] == expect
            if done:
                report()
        sub = session.declare_subscriber(spec["key"], on_sample)
        emit("READY")
        for _ in sys.stdin:
            report()
        sub.undeclare()
    elif action == "serve":
        emit("READY")
        sys.stdin.read()
    session.close()


if __name__ == "__main__":
    main()
