"""A test host for Purple's network tests, run inside a network namespace of
the test's own. Serves TCP (a line naming the address reached) on the given
ports, TCP echo on port 7, and on port 53 of every address a tiny authoritative DNS server for
the zone below (UDP and TCP; a UDP datagram that is not a DNS query is echoed
with "pong"), on IPv4 and IPv6. Every connection, datagram or query it
receives is appended to LOG, so tests can prove that nothing arrived.

    testhost.py LOG UPSTREAM_ADDR PORT...

UPSTREAM_ADDR gets a UDP socket of its own, so that queries sent to it are
logged as "dns udp-upstream" and queries to any other address as "dns udp"."""

import socket
import struct
import sys
import threading

log_path = sys.argv[1]
upstream_addr = sys.argv[2]
tcp_ports = [int(p) for p in sys.argv[3:]]
lock = threading.Lock()

# name -> (IPv4 address, TTL seconds)
ZONE = {
    "allowed.test": ("10.99.0.1", 30),
    "api.allowed.test": ("10.98.0.1", 2),
    "deep.api.allowed.test": ("10.98.0.1", 2),
    "evil.test": ("10.99.1.1", 30),
    "blocked.test": ("10.99.1.1", 30),
    "meta.allowed.test": ("169.254.169.254", 30),
}


def record(kind, peer, local):
    with lock, open(log_path, "a") as f:
        f.write(f"{kind} {peer[0]} -> {local[0]}:{local[1]}\n")


def dual(kind):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    # Answer for any address routed here (1.1.1.1, 169.254.169.254, ...).
    s.setsockopt(socket.SOL_IP, 19, 1)  # IP_FREEBIND
    return s


def listen(port):
    s = dual(socket.SOCK_STREAM)
    s.bind(("::", port))
    s.listen(128)
    return s


def accept(s, handle):
    """Calls handle(conn, peer, local) for every connection to listener s."""
    while True:
        c, peer = s.accept()
        threading.Thread(target=handle, args=(c, peer, c.getsockname()), daemon=True).start()


def line(c, peer, local):
    """A line naming the address reached, then close."""
    with c:
        record("tcp", peer, local)
        c.sendall(f"{local[0]}:{local[1]}\n".encode())


def echo(c, peer, local):
    """Echo: a connection that stays up as long as the client wants."""
    with c:
        record("tcp", peer, local)
        while data := c.recv(512):
            c.sendall(data)


def question(msg):
    """(name, qtype, end of question) of a query, or None."""
    if len(msg) < 17 or msg[2] & 0x80 or struct.unpack("!H", msg[4:6])[0] != 1:
        return None
    labels, at = [], 12
    while at < len(msg) and msg[at] != 0:
        n = msg[at]
        if n > 63:
            return None
        labels.append(msg[at + 1:at + 1 + n].decode("ascii", "replace"))
        at += 1 + n
    if at + 5 > len(msg):
        return None
    qtype = struct.unpack("!H", msg[at + 1:at + 3])[0]
    return ".".join(labels).lower(), qtype, at + 5


def answer(msg, q):
    name, qtype, end = q
    rr = ZONE.get(name)
    flags = 0x8400 | (struct.unpack("!H", msg[2:4])[0] & 0x0100)
    if rr is None:
        flags |= 3  # NXDOMAIN
    records = b""
    if rr is not None and qtype == 1:
        addr, ttl = rr
        records = struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + socket.inet_aton(addr)
    head = msg[:2] + struct.pack("!HHHHH", flags, 1, 1 if records else 0, 0, 0)
    return head + msg[12:end] + records


def log_query(kind, peer, local, q):
    with lock, open(log_path, "a") as f:
        f.write(f"dns {kind} {peer[0]} -> {local[0]}:{local[1]} {q[0]} {q[1]}\n")


def serve_udp(s, kind, local):
    while True:
        data, peer = s.recvfrom(4096)
        q = question(data)
        if q is None:
            record("udp", peer, local)
            s.sendto(b"pong", peer)
            continue
        log_query(kind, peer, local, q)
        s.sendto(answer(data, q), peer)


def dns_tcp(c, peer, local):
    with c:
        c.settimeout(3)
        try:
            n = struct.unpack("!H", c.recv(2, socket.MSG_WAITALL))[0]
            data = c.recv(n, socket.MSG_WAITALL)
            q = question(data)
            if q is not None:
                log_query("tcp", peer, local, q)
                reply = answer(data, q)
                c.sendall(struct.pack("!H", len(reply)) + reply)
        except (OSError, struct.error):
            pass


for p in tcp_ports:
    threading.Thread(target=accept, args=(listen(p), line), daemon=True).start()
any_udp = dual(socket.SOCK_DGRAM)
any_udp.bind(("::", 53))
up_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
up_udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
up_udp.bind((upstream_addr, 53))
threading.Thread(target=serve_udp, args=(any_udp, "udp", ("?", 53)), daemon=True).start()
threading.Thread(target=serve_udp, args=(up_udp, "udp-upstream", (upstream_addr, 53)), daemon=True).start()
threading.Thread(target=accept, args=(listen(53), dns_tcp), daemon=True).start()
threading.Thread(target=accept, args=(listen(7), echo), daemon=True).start()
open(log_path + ".ready", "w").close()
threading.Event().wait()
