"""The agent side of the gateway tests: the official Python MCP SDK's
Client against actiongate's /mcp, with the agent's API key.

  mcp_agent.py URL KEY MODE list
  mcp_agent.py URL KEY MODE call TOOL ARGS_JSON [--progress] [--copies N] [--meta JSON]
  mcp_agent.py URL KEY MODE hang TOOL ARGS_JSON SECONDS

MODE is `legacy` (2025-11-25: initialize, Mcp-Session-Id) or `2026-07-28`
(stateless, per-request version). Prints one JSON document on stdout.
`--copies N` makes N identical calls at once, each from its own client.
`hang` starts a call and drops the connection after SECONDS (a client that
goes away while its call is held).
"""

import json
import sys

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

url, key, mode, command = sys.argv[1:5]
rest = sys.argv[5:]


def client() -> Client:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    transport = streamable_http_client(url, http_client=http)
    return Client(transport, mode=mode, read_timeout_seconds=120)


def result_json(result) -> dict:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def call(tool: str, arguments: dict, progress: bool, meta: dict | None = None) -> dict:
    seen = []

    async def on_progress(value, total, message):
        seen.append({"progress": value, "total": total, "message": message})

    async with client() as c:
        result = await c.call_tool(
            tool, arguments, progress_callback=on_progress if progress else None, meta=meta
        )
        out = result_json(result)
        out["_progress"] = seen
        out["_protocol_version"] = c.protocol_version
        return out


async def main() -> None:
    if command == "list":
        async with client() as c:
            tools = await c.list_tools()
            print(json.dumps({
                "protocol_version": c.protocol_version,
                "server": c.server_info.model_dump(mode="json", exclude_none=True) if c.server_info else None,
                "tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools.tools],
            }))
    elif command == "call":
        tool, arguments = rest[0], json.loads(rest[1])
        progress = "--progress" in rest
        copies = int(rest[rest.index("--copies") + 1]) if "--copies" in rest else 1
        meta = json.loads(rest[rest.index("--meta") + 1]) if "--meta" in rest else None
        results = [None] * copies

        async def one(i):
            results[i] = await call(tool, arguments, progress, meta)

        async with anyio.create_task_group() as tg:
            for i in range(copies):
                tg.start_soon(one, i)
        print(json.dumps(results[0] if copies == 1 else results))
    elif command == "hang":
        tool, arguments, seconds = rest[0], json.loads(rest[1]), float(rest[2])
        with anyio.move_on_after(seconds):
            await call(tool, arguments, False)
        print(json.dumps({"dropped_after": seconds}))
    else:
        sys.exit(f"unknown command {command}")


anyio.run(main)
