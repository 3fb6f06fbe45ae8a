"""One chat completion through the official OpenAI Python SDK.

Used by the kernel tests: runs in the agent namespace, calls the VIP, and
prints one JSON line (or, through session.py, returns it from run()) with
what the client received and the local address of the connection that
carried the request (to find which node served it).

    sdk_agent.py --base-url http://10.0.100.1:8000/v1 --prompt "turn on the light"
                 [--stream] [--max-tokens N] [--agent-lib] [--system TEXT]
"""

import argparse
import json
import sys

import httpx
import openai


def local_address(response: httpx.Response) -> str:
    stream = response.extensions.get("network_stream")
    host, port = stream.get_extra_info("client_addr")[:2]
    return f"{host}:{port}"


def run(argv) -> dict:
    """One chat completion with these arguments; returns what main prints.

    The HTTP client (and the agent library's transport) is closed before it
    returns, so every call has connections of its own, as a process would.
    """
    ap = argparse.ArgumentParser(prog="sdk_agent.py")
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--system")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--max-tokens", type=int)
    ap.add_argument("--agent-lib", action="store_true", help="send through intellinode_agent.Transport")
    args = ap.parse_args(argv)

    transport = None
    if args.agent_lib:
        import intellinode_agent

        transport = intellinode_agent.Transport()
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    extra = {} if args.max_tokens is None else {"max_tokens": args.max_tokens}

    with httpx.Client(transport=transport, timeout=30.0) as http_client:
        client = openai.OpenAI(base_url=args.base_url, api_key="not-needed", http_client=http_client, max_retries=0)
        if args.stream:
            with client.chat.completions.with_streaming_response.create(
                model="intellinode-emulated", messages=messages, stream=True, **extra
            ) as raw:
                local = local_address(raw.http_response)
                features = raw.http_response.extensions.get("intellinode_features")
                text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        else:
            raw = client.chat.completions.with_raw_response.create(
                model="intellinode-emulated", messages=messages, **extra
            )
            local = local_address(raw.http_response)
            features = raw.http_response.extensions.get("intellinode_features")
            text = raw.parse().choices[0].message.content
    return {"local": local, "content": text, "features": features}


def main() -> int:
    print(json.dumps(run(sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
