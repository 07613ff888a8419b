"""Verifies an actiongate grant with PyJWT, a standard JOSE library.

usage: verify_grant.py JWKS_JSON TOKEN
Prints the verified claims as JSON; exits non-zero if PyJWT refuses the token.
"""
import json
import sys

import jwt

jwks = json.loads(sys.argv[1])
token = sys.argv[2]
key = jwt.PyJWK(jwks["keys"][0])
header = jwt.get_unverified_header(token)
assert header["kid"] == jwks["keys"][0]["kid"], "kid names the JWKS key"
claims = jwt.decode(
    token,
    key=key,
    algorithms=["EdDSA"],
    audience="actiongate-executor",
    issuer="actiongate",
    options={"require": ["exp", "iat", "jti", "sub"]},
)
print(json.dumps(claims))
