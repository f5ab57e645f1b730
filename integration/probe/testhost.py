"""A test host for Purple's network tests, run inside a network namespace of
the test's own. Serves TCP (a line naming the address reached) on the given
ports and UDP echo on port 53, on IPv4 and IPv6; every connection or datagram
it receives is appended to LOG, so tests can prove that nothing arrived."""

import socket
import sys
import threading

log_path = sys.argv[1]
tcp_ports = [int(p) for p in sys.argv[2:]]
lock = threading.Lock()


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


def serve_tcp(port):
    s = dual(socket.SOCK_STREAM)
    s.bind(("::", port))
    s.listen(128)
    while True:
        c, peer = s.accept()
        local = c.getsockname()
        record("tcp", peer, local)
        c.sendall(f"{local[0]}:{local[1]}\n".encode())
        c.close()


def serve_udp():
    s = dual(socket.SOCK_DGRAM)
    s.bind(("::", 53))
    while True:
        data, peer = s.recvfrom(512)
        record("udp", peer, ("?", 53))
        s.sendto(b"pong", peer)


for p in tcp_ports:
    threading.Thread(target=serve_tcp, args=(p,), daemon=True).start()
threading.Thread(target=serve_udp, daemon=True).start()
open(log_path + ".ready", "w").close()
threading.Event().wait()
