"""Data exports (``db.export``), the rules of plugins/examples/db-export in
Python, tested with the very same case file.

Risk grows with the row count, with tables tagged PII, and with a
destination outside the allow-list. Small, clean exports run at once;
critical ones need two data owners; PII to an unknown destination is denied.
"""

from actiongate_policy import (
    Approval,
    Classification,
    PluginInfo,
    Policy,
    PolicyError,
    Risk,
    Route,
    export,
)

# Tables that hold personal data.
PII_TABLES = {"customers", "users", "employees", "payments", "addresses"}
# Where data may go without extra scrutiny.
ALLOWED_DESTINATIONS = ("s3://corp-analytics/", "s3://corp-backups/", "bq://corp-warehouse/")
LARGE_ROWS = 100_000
HUGE_ROWS = 1_000_000
SMALL_ROWS = 10_000
MODIFIABLE = ["rows", "tables", "destination"]


class DbExport(Policy):
    def describe(self):
        return PluginInfo("db-export-py", "1.0.0", ["db.export"])

    def classify(self, action):
        params = action.params()
        rows = params.require("rows", int)
        tables = params.require("tables", list[str])
        destination = params.require("destination", str)
        if not 0 <= rows < 2**64:
            raise PolicyError(f"params.rows: {rows} is not a row count")
        if not tables:
            raise PolicyError("params.tables must name at least one table")

        c = Classification(Risk.LOW)
        if rows > HUGE_ROWS:
            c.raise_to(Risk.HIGH, "rows:huge", f"{rows} rows is over {HUGE_ROWS}")
        elif rows > SMALL_ROWS:
            c.raise_to(Risk.MEDIUM, "rows:large", f"{rows} rows is over {SMALL_ROWS}")
        pii = [t.rsplit(".", 1)[-1] for t in tables if t.rsplit(".", 1)[-1] in PII_TABLES]
        if pii:
            risk = Risk.CRITICAL if rows > LARGE_ROWS else Risk.HIGH
            c.raise_to(risk, "pii", f"tables with personal data: {', '.join(pii)}")
        if not destination.startswith(ALLOWED_DESTINATIONS):
            c.raise_to(
                Risk.CRITICAL,
                "destination:unlisted",
                f"destination {destination} is not on the allow-list",
            )
        return c

    def route(self, action, c):
        if c.has_tag("pii") and c.has_tag("destination:unlisted"):
            return Route.deny("personal data may only be exported to allow-listed destinations")
        if c.risk == Risk.LOW:
            return Route.allow()
        if c.risk == Risk.MEDIUM:
            return Approval(["data-owners"], quorum=1).modifiable(MODIFIABLE)
        if c.risk == Risk.HIGH:
            return Approval(["data-owners"], quorum=1).modifiable(MODIFIABLE).escalate_to(["security"])
        return (
            Approval(["data-owners"], quorum=2)
            .ttl_seconds(4 * 3600)
            .modifiable(MODIFIABLE)
            .escalate_to(["security"])
        )


WitWorld = export(DbExport)
