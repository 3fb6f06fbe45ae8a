"""IntelliNode agent library: put an LLM request's token features on the wire.

The appliance steers a request by its token feature TLV (docs/wire-format.md
§5): an IPv4 option (0x9E) or an IPv6 Hop-by-Hop option (0x1E) carrying the
64-bit token feature ID. With the TLV on the SYN, the appliance decides the
connection's path, instance and class before any payload arrives.

    import httpx, openai, intellinode_agent
    client = openai.OpenAI(base_url="http://10.0.100.1:8000/v1", api_key="-",
                           http_client=httpx.Client(transport=intellinode_agent.Transport()))
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "turn on the light"}])

`Transport` reads each request's JSON body, computes its features with the
same code as the `tokenfeat` CLI, and sends the request on a connection whose
socket carries that request's TLV from the SYN on. A request with leading
system (or developer) messages or `tools` names them as its shared prefix:
the ID is layout version 2 (wire-format §5.2a), so the appliance can send
it where that prefix is cached. `features(prompt, prefix=...)` does the
same for a bare prompt. Connections are pooled per
feature ID (a bounded number of pools), so keep-alive still works for
requests with the same features.

Setting an unknown IP option needs CAP_NET_RAW on Linux (root, or
`setcap cap_net_raw+ep` on the interpreter); without it the connection
fails with PermissionError rather than silently going without its TLV.
"""

from __future__ import annotations

import collections
import socket
import threading
import typing

import httpcore
import httpx

from ._native import features, ipv4_option, ipv6_hop_by_hop, request_features

__all__ = [
    "features",
    "request_features",
    "ipv4_option",
    "ipv6_hop_by_hop",
    "socket_option",
    "Transport",
]

# Linux values; older Pythons may not export IPV6_HOPOPTS.
_IP_OPTIONS = getattr(socket, "IP_OPTIONS", 4)
_IPV6_HOPOPTS = getattr(socket, "IPV6_HOPOPTS", 54)


def socket_option(feature_id: int, family: int, directed: bool = False):
    """The (level, option, value) that makes a socket of `family` carry the TLV."""
    if family == socket.AF_INET:
        return (socket.IPPROTO_IP, _IP_OPTIONS, ipv4_option(feature_id, directed))
    if family == socket.AF_INET6:
        return (socket.IPPROTO_IPV6, _IPV6_HOPOPTS, ipv6_hop_by_hop(feature_id, directed))
    raise ValueError(f"token feature TLV: no carrier for address family {family}")


class _TlvBackend(httpcore.SyncBackend):
    """Opens TCP connections whose sockets carry one feature ID's TLV.

    httpcore sets its `socket_options` after connect(), which would leave the
    SYN without the TLV, so this backend makes the socket itself and sets the
    option before connecting.
    """

    def __init__(self, feature_id: int, directed: bool):
        self._feature_id = feature_id
        self._directed = directed

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last_error: typing.Optional[OSError] = None
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise httpcore.ConnectError(str(e)) from e
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(*socket_option(self._feature_id, family, self._directed))
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(timeout)
                if local_address is not None:
                    sock.bind((local_address, 0))
                sock.connect(address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return httpcore._backends.sync.SyncStream(sock)
            except socket.timeout as e:
                sock.close()
                raise httpcore.ConnectTimeout(str(e)) from e
            except PermissionError:
                sock.close()
                raise
            except OSError as e:
                sock.close()
                last_error = e
        raise httpcore.ConnectError(str(last_error or f"no address for {host}"))


class Transport(httpx.BaseTransport):
    """An httpx transport that sends each OpenAI request with its token features.

    `urgent` marks every request explicitly immediate; `directed` sets the
    TLV's D flag. Requests whose body is not an OpenAI chat-completions or
    completions request (GET /v1/models, ...) go on a plain connection.
    `max_pools` bounds the number of per-feature-ID connection pools; the
    least recently used one is closed when a new one is needed. Other
    keyword arguments go to each `httpx.HTTPTransport`.
    """

    def __init__(self, urgent: bool = False, directed: bool = False, max_pools: int = 32, **kwargs):
        if max_pools < 1:
            raise ValueError("max_pools must be at least 1")
        self._urgent = urgent
        self._directed = directed
        self._max_pools = max_pools
        self._kwargs = kwargs
        self._plain = httpx.HTTPTransport(**kwargs)
        self._pools: "collections.OrderedDict[int, httpx.HTTPTransport]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def features_of(self, request: httpx.Request) -> typing.Optional[dict]:
        """The features this transport puts on `request`, or None."""
        if request.method != "POST":
            return None
        return request_features(request.read(), self._urgent)

    def _pool_for(self, feature_id: int) -> httpx.HTTPTransport:
        with self._lock:
            pool = self._pools.get(feature_id)
            if pool is not None:
                self._pools.move_to_end(feature_id)
                return pool
            pool = httpx.HTTPTransport(**self._kwargs)
            inner = getattr(pool, "_pool", None)
            if not isinstance(inner, httpcore.ConnectionPool):
                raise RuntimeError("intellinode_agent needs httpx's HTTPTransport on an httpcore 1.x ConnectionPool")
            inner._network_backend = _TlvBackend(feature_id, self._directed)
            self._pools[feature_id] = pool
            evicted = None
            if len(self._pools) > self._max_pools:
                _, evicted = self._pools.popitem(last=False)
        if evicted is not None:
            evicted.close()
        return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        f = self.features_of(request)
        if f is None:
            return self._plain.handle_request(request)
        response = self._pool_for(f["feature_id"]).handle_request(request)
        response.extensions["intellinode_features"] = f
        return response

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), collections.OrderedDict()
        for pool in pools:
            pool.close()
        self._plain.close()
