"""A loopback reverse proxy that adds `Authorization: Bearer KEY` to every
request: the MCP conformance runner cannot send a header, and actiongate's
/mcp wants an agent key. Streams responses (SSE) through unchanged.

  mcp_auth_proxy.py PORT TARGET_URL KEY
"""

import sys

from aiohttp import ClientSession, ClientTimeout, web

port, target, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "authorization"}


async def forward(request: web.Request) -> web.StreamResponse:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    headers["Authorization"] = f"Bearer {key}"
    body = await request.read()
    session: ClientSession = request.app["session"]
    async with session.request(request.method, target, headers=headers, data=body, auto_decompress=False) as up:
        response = web.StreamResponse(status=up.status)
        for k, v in up.headers.items():
            if k.lower() not in HOP:
                response.headers[k] = v
        await response.prepare(request)
        async for chunk in up.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def session(app: web.Application):
    app["session"] = ClientSession(timeout=ClientTimeout(total=None))
    yield
    await app["session"].close()


app = web.Application()
app.cleanup_ctx.append(session)
app.router.add_route("*", "/{tail:.*}", forward)
web.run_app(app, host="127.0.0.1", port=port, print=None)
