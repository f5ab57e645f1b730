# A stand-in for an AI agent: it does one thing its policy allows and one it
# forbids. Under `--profile secure-agent` the second fails in the kernel,
# before any packet leaves, and the refusal is in the audit trail.
import socket


def connect(addr, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((addr, port))
        return "connected"
    except OSError as e:
        return e.strerror


# A service of the agent's own, on the sandbox's loopback (not the host's).
server = socket.socket()
server.bind(("127.0.0.1", 8000))
server.listen()
print("own service on 127.0.0.1:8000:", connect("127.0.0.1", 8000))
# Cloud metadata: where stolen cloud credentials come from.
print("cloud metadata 169.254.169.254:", connect("169.254.169.254", 80))
