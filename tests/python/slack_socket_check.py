"""Checks the fake Slack's Socket Mode with the official slack_sdk
SocketModeClient: connect through apps.connections.open, ack envelopes
(with a response payload for view submissions), reconnect on `disconnect`.

    slack_socket_check.py BASE_URL APP_TOKEN BOT_TOKEN
Prints "connected", then the envelope types it acked, as JSON, and exits.
"""
import json
import logging
import os
import sys
import threading
import time

from slack_sdk import WebClient
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websocket_client import SocketModeClient


def main():
    if os.environ.get("SLACK_CHECK_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    base, app_token, bot_token = sys.argv[1:4]
    client = SocketModeClient(
        app_token=app_token,
        web_client=WebClient(token=bot_token, base_url=base),
        auto_reconnect_enabled=True,
    )
    seen = []
    done = threading.Event()

    def process(client, request):
        seen.append(request.payload.get("type"))
        if request.payload.get("type") == "view_submission":
            payload = {"response_action": "errors", "errors": {"reason": "checked by slack_sdk"}}
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=payload))
        else:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        if len(seen) >= 2:
            done.set()

    client.socket_mode_request_listeners.append(process)
    client.connect()
    print("connected", flush=True)
    if not done.wait(30):
        sys.exit(f"timed out; saw {seen}")
    time.sleep(0.3)
    client.close()
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main()
