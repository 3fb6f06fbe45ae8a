"""Many client calls in one interpreter, for the kernel tests.

Reads one JSON request per line on stdin,

    {"script": "sdk_agent.py", "args": ["--base-url", "...", "--prompt", "..."]}

runs that script's call as if the script had been started with those
arguments, and prints one JSON line: {"ok": what the script would print} or
{"error": the traceback}. Each call opens its own connections and closes
them before it answers, as a process of its own would; what the calls share
is the interpreter and the imported SDK, whose start-up and import are most
of what a one-call process costs. Ends at the end of its input.
"""

import json
import sys
import traceback

import sdk_agent
import splice_client

SCRIPTS = {"sdk_agent.py": sdk_agent.run, "splice_client.py": splice_client.run}


def main() -> int:
    for line in sys.stdin:
        request = json.loads(line)
        try:
            out = {"ok": SCRIPTS[request["script"]](request["args"])}
        except (Exception, SystemExit):  # argparse exits on bad arguments
            out = {"error": traceback.format_exc()}
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
