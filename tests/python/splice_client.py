"""Raw-socket clients for the delayed-binding kernel test (splice_kernel).

Runs in the agent namespace and prints one JSON line (or, through
session.py, returns it from run()).

    splice_client.py split    --target 10.0.100.1:8000 --prompt TEXT [--piece N]
        one request written in N-byte pieces (TCP_NODELAY, a pause between
        them), so the request spans many segments; prints the answering node
    splice_client.py keepalive --target ... --prompt A --prompt B ...
        the prompts one after the other on one HTTP/1.1 connection
    splice_client.py tools    --target ... --prompt TEXT --tools-kib N
        a body of N KiB of tool definitions, then the user's short prompt
    splice_client.py flood    --target ... --count N
        N SYNs from N spoofed source addresses (10.0.1.100 + i), raw socket
    splice_client.py stall    --target ... --count N --hold-s S
        N connections that send one byte and then nothing; counts how many
        the appliance reset within S seconds
"""

import argparse
import json
import socket
import struct
import sys
import time


def body_of(prompts, tools_kib=0):
    messages = [{"role": "system", "content": "You are a terse assistant."}]
    for p in prompts:
        messages.append({"role": "user", "content": p})
    body = {"model": "intellinode-emulated", "messages": messages, "stream": False, "max_tokens": 16}
    if tools_kib:
        tool = {
            "type": "function",
            "function": {
                "name": "write_code",
                "description": "Write a Python function, implement and refactor code, prove it step by step. " * 3,
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            },
        }
        one = len(json.dumps(tool))
        body["tools"] = [dict(tool, function=dict(tool["function"], name=f"tool_{i}")) for i in range(tools_kib * 1024 // one + 1)]
        # The tools first, then the conversation, as agents send them.
        body = {"model": body["model"], "tools": body["tools"], "messages": messages, "stream": False, "max_tokens": 16}
    return json.dumps(body).encode()


def request(host, body, keep_alive=True):
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        + ("" if keep_alive else "Connection: close\r\n")
        + "\r\n"
    )
    return head.encode() + body


def read_response(sock):
    """One HTTP response with a Content-Length body (100 Continue skipped)."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed after {buf[:200]!r}")
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if 100 <= status < 200:
            continue
        n = int(headers.get("content-length", "0"))
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        return status, headers, buf[:n]


def connect(target):
    host, port = target.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def answer(status, headers, local):
    return {"status": status, "node": headers.get("x-node"), "local": local}


def split(args):
    s = connect(args.target)
    local = "%s:%d" % s.getsockname()[:2]
    data = request(args.target, body_of([args.prompt]))
    for i in range(0, len(data), args.piece):
        s.sendall(data[i : i + args.piece])
        time.sleep(0.01)
    status, headers, _ = read_response(s)
    s.close()
    return answer(status, headers, local)


def keepalive(args):
    s = connect(args.target)
    local = "%s:%d" % s.getsockname()[:2]
    out = []
    for p in args.prompt:
        s.sendall(request(args.target, body_of([p])))
        status, headers, _ = read_response(s)
        out.append(answer(status, headers, local))
    s.close()
    return {"answers": out}


def tools(args):
    s = connect(args.target)
    local = "%s:%d" % s.getsockname()[:2]
    body = body_of([args.prompt], tools_kib=args.tools_kib)
    s.sendall(request(args.target, body))
    status, headers, _ = read_response(s)
    s.close()
    return dict(answer(status, headers, local), body_bytes=len(body))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def flood(args):
    host, port = args.target.rsplit(":", 1)
    dst = socket.inet_aton(host)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = 0
    for i in range(args.count):
        src = socket.inet_aton(f"10.0.{1 + (100 + i) // 250}.{(100 + i) % 250 + 1}")
        sport = 20000 + i % 40000
        tcp = struct.pack("!HHIIBBHHH", sport, int(port), 1000 + i, 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dst)
        raw.sendto(ip + tcp, (host, 0))
        sent += 1
        if sent % 100 == 0:
            # Paced a little, so the veth and packet rings keep up: the
            # point is many sources, not overrunning the NIC.
            time.sleep(0.005)
    return {"sent": sent}


def stall(args):
    socks = []
    for _ in range(args.count):
        s = connect(args.target)
        s.sendall(b"P")
        socks.append(s)
    deadline = time.time() + args.hold_s
    reset = 0
    for s in socks:
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            if s.recv(1) == b"":
                reset += 1
        except (ConnectionResetError, BrokenPipeError):
            reset += 1
        except socket.timeout:
            pass
        s.close()
    return {"stalled": len(socks), "reset": reset}


def run(argv):
    """One client call with these arguments; returns what main prints."""
    ap = argparse.ArgumentParser(prog="splice_client.py")
    ap.add_argument("mode", choices=["split", "keepalive", "tools", "flood", "stall"])
    ap.add_argument("--target", required=True)
    ap.add_argument("--prompt", action="append", default=[])
    ap.add_argument("--piece", type=int, default=40)
    ap.add_argument("--tools-kib", type=int, default=200)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--hold-s", type=float, default=8.0)
    args = ap.parse_args(argv)
    if args.mode in ("split", "tools"):
        args.prompt = args.prompt[0]
    return globals()[args.mode](args)


def main():
    print(json.dumps(run(sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
