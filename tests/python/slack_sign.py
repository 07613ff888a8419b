"""Signs (or checks) a Slack request body the way Slack does, with the
official slack_sdk SignatureVerifier.

    slack_sign.py sign SECRET TIMESTAMP BODY_FILE        -> prints v0=...
    slack_sign.py check SECRET TIMESTAMP BODY_FILE SIG   -> exits 0 if valid
"""
import sys

from slack_sdk.signature import SignatureVerifier


def main():
    mode, secret, timestamp, body_path = sys.argv[1:5]
    with open(body_path, "rb") as f:
        body = f.read().decode("utf-8")
    verifier = SignatureVerifier(signing_secret=secret)
    if mode == "sign":
        print(verifier.generate_signature(timestamp=timestamp, body=body))
    elif mode == "check":
        signature = sys.argv[5]
        headers = {"x-slack-request-timestamp": timestamp, "x-slack-signature": signature}
        if not verifier.is_valid_request(body, headers):
            sys.exit("slack_sdk refused the signature")
        print("valid")
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
