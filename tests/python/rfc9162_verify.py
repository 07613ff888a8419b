#!/usr/bin/env python3
"""Independent verifier for actiongate's evidence log over HTTP.

Written from the RFC text, sharing no code with the Rust host:
  * leaf and tree hashes: RFC 6962 section 2.1 (MTH),
  * inclusion proofs: RFC 9162 section 2.1.3.2,
  * consistency proofs: RFC 9162 section 2.1.4.2,
  * the checkpoint: C2SP tlog-checkpoint and signed-note, Ed25519 verified with
    the `cryptography` package.

usage: rfc9162_verify.py BASE_URL VKEY
Exits non-zero with a message on the first failure.
"""

import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request


def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def mth(leaves):
    """RFC 6962 2.1: Merkle Tree Hash of a list of leaf hashes."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(leaf_index, tree_size, h, path, root):
    """RFC 9162 2.1.3.2."""
    if leaf_index >= tree_size:
        return False
    fn, sn, r = leaf_index, tree_size - 1, h
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, path):
    """RFC 9162 2.1.4.2 (for 0 < first < second)."""
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:  # exact power of 2
        path = [first_hash] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def verify_note(note, vkey):
    """C2SP signed-note with an Ed25519 key; returns the note text."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    name, key_id_hex, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64)
    if key[0] != 1 or len(key) != 33:
        fail("verifier key is not Ed25519")
    if sha256(name.encode() + b"\n" + key)[:4] != bytes.fromhex(key_id_hex):
        fail("verifier key id does not match")
    text, sep, sigs = note.rpartition("\n\n")
    if not sep:
        fail("note has no signature block")
    text += "\n"
    pub = Ed25519PublicKey.from_public_bytes(key[1:])
    ok = False
    for line in sigs.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            fail("bad signature line %r" % line)
        sig_name, sig_b64 = line[2:].split(" ", 1)
        sig = base64.b64decode(sig_b64)
        if sig_name == name and sig[:4] == bytes.fromhex(key_id_hex):
            pub.verify(sig[4:], text.encode())  # raises on a bad signature
            ok = True
    if not ok:
        fail("no signature by %s" % name)
    return text


def get(base, path):
    with urllib.request.urlopen(base + path) as r:
        body = r.read()
        return json.loads(body) if r.headers.get_content_type() == "application/json" else body.decode()


def b64(s):
    return base64.b64decode(s)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    base, vkey = sys.argv[1].rstrip("/"), sys.argv[2]
    note = get(base, "/v1/log/checkpoint")
    lines = verify_note(note, vkey).split("\n")
    origin, size, root = lines[0], int(lines[1]), b64(lines[2])
    if origin != vkey.split("+")[0]:
        fail("origin %r is not the key's name" % origin)

    leaves = []
    while len(leaves) < size:
        start = len(leaves)
        page = get(base, "/v1/log/entries?start=%d&end=%d" % (start, min(size, start + 1000)))
        for e in page["entries"]:
            if e["seq"] != len(leaves):
                fail("entry %d out of order" % e["seq"])
            h = leaf_hash(e["canonical"].encode("utf-8"))
            if h != b64(e["leaf_hash"]):
                fail("leaf %d hash mismatch" % e["seq"])
            leaves.append(h)
    roots = [mth(leaves[:n]) for n in range(size + 1)]
    if roots[size] != root:
        fail("checkpoint root is not the MTH of the entries")

    checked = 0
    for n in range(1, size + 1):
        for m in range(n):
            p = get(base, "/v1/log/proof/inclusion?index=%d&size=%d" % (m, n))
            path = [b64(h) for h in p["hashes"]]
            if not verify_inclusion(m, n, leaves[m], path, roots[n]):
                fail("inclusion %d in %d" % (m, n))
            if path:
                bad = [bytes([path[0][0] ^ 1]) + path[0][1:]] + path[1:]
                if verify_inclusion(m, n, leaves[m], bad, roots[n]):
                    fail("tampered inclusion proof %d in %d verified" % (m, n))
            checked += 1
        for m in range(1, n + 1):
            p = get(base, "/v1/log/proof/consistency?from=%d&to=%d" % (m, n))
            path = [b64(h) for h in p["hashes"]]
            if m == n:
                if path:
                    fail("consistency %d->%d should be empty" % (m, n))
                continue
            if not verify_consistency(m, n, roots[m], roots[n], path):
                fail("consistency %d -> %d" % (m, n))
            bad = path[:-1] + [bytes([path[-1][0] ^ 1]) + path[-1][1:]]
            if verify_consistency(m, n, roots[m], roots[n], bad):
                fail("tampered consistency proof %d -> %d verified" % (m, n))
            checked += 1
    print("OK size=%d proofs=%d" % (size, checked))


if __name__ == "__main__":
    main()
