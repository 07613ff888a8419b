"""Checks the fake Slack (tests/support/fake_slack.rs) with the official
slack_sdk WebClient: if the SDK can talk to it, its wire format is Slack's.

    slack_fake_check.py BASE_URL BOT_TOKEN TRIGGER_ID
Expects auth.test to be scripted with one 429 (Retry-After: 1) first.
Prints a JSON summary for the Rust side to compare with the fake's state.
"""
import json
import sys

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    HeaderBlock,
    InputBlock,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View


def expect_error(call, error):
    try:
        call()
    except SlackApiError as e:
        assert e.response["error"] == error, e.response
        return e
    raise AssertionError(f"expected {error}")


def main():
    base, bot, trigger = sys.argv[1:4]
    client = WebClient(token=bot, base_url=base)

    # 429 surfaces as an error with Retry-After; the SDK's retry handler honours it.
    e = expect_error(client.auth_test, "ratelimited")
    assert e.response.status_code == 429
    assert e.response.headers.get("Retry-After", e.response.headers.get("retry-after")) == "1"
    retrying = WebClient(
        token=bot, base_url=base, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)]
    )
    auth = retrying.auth_test()
    assert auth["team_id"] == "T0FAKE", auth.data

    expect_error(WebClient(token="xoxb-wrong", base_url=base).auth_test, "invalid_auth")

    posted = client.chat_postMessage(
        channel="C0CHECK",
        text="Approval needed",
        blocks=[
            HeaderBlock(text="Approval needed: db.export"),
            SectionBlock(text="*Risk* high"),
            ActionsBlock(
                block_id="actiongate_review",
                elements=[
                    ButtonElement(
                        text="Approve",
                        action_id="actiongate_approve",
                        value="a|d",
                        style="primary",
                        confirm=ConfirmObject(title="Sure?", text="Really", confirm="Yes", deny="No"),
                    ),
                    ButtonElement(text="Deny", action_id="actiongate_deny", value="a|d", style="danger"),
                ],
            ),
        ],
    )
    ts = posted["ts"]
    assert posted["channel"] == "C0CHECK"
    client.chat_update(channel="C0CHECK", ts=ts, text="Approved", blocks=[SectionBlock(text="done")])
    client.chat_postMessage(channel="C0CHECK", thread_ts=ts, text="Reminder", reply_broadcast=True)
    expect_error(lambda: client.chat_update(channel="C0CHECK", ts="1.2", text="x"), "message_not_found")
    # slack_sdk's models refuse this locally; as a plain dict it reaches the fake.
    too_long = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    expect_error(lambda: client.chat_postMessage(channel="C0CHECK", blocks=[too_long], text="x"), "invalid_blocks")
    client.chat_postEphemeral(channel="C0CHECK", user="U0DANA", text="only you")

    user = client.users_lookupByEmail(email="dana@example.com")
    assert user["user"]["id"] == "U0DANA", user.data
    expect_error(lambda: client.users_lookupByEmail(email="nobody@example.com"), "users_not_found")

    view = View(
        type="modal",
        callback_id="actiongate_review",
        title="Deny action",
        submit="Deny",
        close="Cancel",
        private_metadata="{}",
        blocks=[InputBlock(block_id="reason", label="Why?", element=PlainTextInputElement(action_id="value"))],
    )
    opened = client.views_open(trigger_id=trigger, view=view)
    assert opened["view"]["id"].startswith("V"), opened.data
    # A trigger works once.
    expect_error(lambda: client.views_open(trigger_id=trigger, view=view), "invalid_trigger_id")

    print(json.dumps({"ts": ts}))


if __name__ == "__main__":
    main()
