"""Reads request bodies the way another party would: Python's json, then the
rfc8785 package's canonical form (RFC 8785) and its sha256.

Usage: canonical_digest.py CASES.jsonl

Each line of CASES.jsonl is {"body": "<the exact request body text>",
"recorded": <the action the host recorded for it>}. The action's host-made
fields (id, agent, requested_at) come from the record; everything the agent
sent comes from this script's own parse of the body. For each line it prints
{"params": "<canonical params>", "digest": "<sha256 of the canonical action>"}.
"""

import hashlib
import json
import sys

import rfc8785

# The submission fields an agent sends, as the host's Action names them.
SENT = ("kind", "resource", "params", "justification", "context", "on_behalf_of")


def main(path):
    with open(path, encoding="utf-8") as cases:
        for line in cases:
            case = json.loads(line)
            body = json.loads(case["body"])
            action = dict(case["recorded"])
            for field in SENT:
                if field in body:
                    action[field] = body[field]
            print(
                json.dumps(
                    {
                        "params": rfc8785.dumps(body["params"]).decode("utf-8"),
                        "digest": hashlib.sha256(rfc8785.dumps(action)).hexdigest(),
                    }
                )
            )


if __name__ == "__main__":
    main(sys.argv[1])
