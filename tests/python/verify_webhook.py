"""Verifies one Standard Webhooks delivery with the reference library.

usage: verify_webhook.py SECRET ID TIMESTAMP SIGNATURE BODY
Exits non-zero (with the library's error) if the signature does not verify.
"""
import sys

from standardwebhooks.webhooks import Webhook

secret, msg_id, timestamp, signature, body = sys.argv[1:6]
Webhook(secret).verify(body, {
    "webhook-id": msg_id,
    "webhook-timestamp": timestamp,
    "webhook-signature": signature,
})
print("verified")
