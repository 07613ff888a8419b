"""Validates an OpenAPI document with openapi-spec-validator (pinned in
requirements.txt), then checks that every route the service serves is
listed and that every operation documents its errors as problem+json.

Usage: openapi_validate.py DOCUMENT.json "METHOD /path" ...
Prints one line per problem found; exits 1 if there is any.
"""

import json
import sys

from openapi_spec_validator import validate


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    validate(spec)  # raises on an invalid document
    problems = []
    paths = spec.get("paths", {})
    for route in sys.argv[2:]:
        method, path = route.split(" ", 1)
        operation = paths.get(path, {}).get(method.lower())
        if operation is None:
            problems.append(f"{route}: not listed")
            continue
        responses = operation.get("responses", {})
        errors = {code: r for code, r in responses.items() if code[0] in "45"}
        for default in ("4XX", "5XX"):
            if default not in errors:
                problems.append(f"{route}: no {default} response")
        for code, response in errors.items():
            content = response.get("content", {})
            if not content:
                problems.append(f"{route}: {code} has no documented body")
                continue
            if "application/problem+json" not in content:
                # A decision, not an error (e.g. 403 "denied by policy"
                # carries the action's status): documented as such.
                continue
            schema = content["application/problem+json"].get("schema", {})
            if schema.get("$ref") != "#/components/schemas/Problem":
                problems.append(f"{route}: {code} is not problem+json")
        for default in ("4XX", "5XX"):
            content = errors.get(default, {}).get("content", {})
            if "application/problem+json" not in content:
                problems.append(f"{route}: {default} is not problem+json")
    problem = spec.get("components", {}).get("schemas", {}).get("Problem", {})
    for field in ("type", "title", "status", "detail"):
        if field not in problem.get("properties", {}):
            problems.append(f"Problem schema has no `{field}`")
    for line in problems:
        print(line)
        print(line, file=sys.stderr)
    print(f"{spec['openapi']}: {len(paths)} paths, {len(sys.argv) - 2} routes checked")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
