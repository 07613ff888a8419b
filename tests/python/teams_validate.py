"""Validates Bot Framework channel tokens with Microsoft's own
botframework-connector (pinned in requirements.txt), pointed at the test's
fake OpenID metadata. Reads [{"name", "token", "service_url"}] from the JSON
file CASES; prints {"name": "accepted" | "refused: <why>"} as JSON.

usage: teams_validate.py METADATA_URL APP_ID APP_SECRET CHANNEL_ID CASES
"""

import asyncio
import json
import sys

from botframework.connector.auth import (
    ChannelValidation,
    SimpleCredentialProvider,
)


async def main() -> None:
    metadata_url, app_id, app_secret, channel_id, cases = sys.argv[1:6]
    # The SDK's switch for a non-public cloud's metadata document.
    ChannelValidation.open_id_metadata_endpoint = metadata_url
    credentials = SimpleCredentialProvider(app_id, app_secret)
    verdicts = {}
    with open(cases, encoding="utf-8") as file:
        cases = json.load(file)
    for case in cases:
        try:
            identity = await ChannelValidation.authenticate_channel_token_with_service_url(
                "Bearer " + case["token"],
                credentials,
                case["service_url"],
                channel_id,
            )
            verdicts[case["name"]] = (
                "accepted" if identity and identity.is_authenticated else "refused: no identity"
            )
        except Exception as error:  # the SDK raises plain Exceptions too
            verdicts[case["name"]] = f"refused: {type(error).__name__}: {error}"
    json.dump(verdicts, sys.stdout)


asyncio.run(main())
