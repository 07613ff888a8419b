//! Data exports (`db.export`).
//!
//! Risk grows with the row count, with tables tagged PII, and with a
//! destination outside the allow-list. Small, clean exports run at once;
//! critical ones need two data owners; PII to an unknown destination is denied.

#![no_std]

use actiongate_sdk::prelude::*;

/// Tables that hold personal data.
const PII_TABLES: &[&str] = &["customers", "users", "employees", "payments", "addresses"];
/// Where data may go without extra scrutiny.
const ALLOWED_DESTINATIONS: &[&str] = &[
    "s3://corp-analytics/",
    "s3://corp-backups/",
    "bq://corp-warehouse/",
];
const LARGE_ROWS: u64 = 100_000;
const HUGE_ROWS: u64 = 1_000_000;
const SMALL_ROWS: u64 = 10_000;

struct DbExport;

impl Policy for DbExport {
    fn describe() -> PluginInfo {
        PluginInfo::new("db-export", "1.0.0", &["db.export"])
    }

    fn classify(action: &Action) -> Result<Classification, String> {
        let params = action.params()?;
        let rows: u64 = params.require("rows")?;
        let tables: Vec<String> = params.require("tables")?;
        let destination: String = params.require("destination")?;
        if tables.is_empty() {
            return Err("params.tables must name at least one table".into());
        }

        let mut c = Classification::new(Risk::Low);
        if rows > HUGE_ROWS {
            c.raise(
                Risk::High,
                "rows:huge",
                format!("{rows} rows is over {HUGE_ROWS}"),
            );
        } else if rows > SMALL_ROWS {
            c.raise(
                Risk::Medium,
                "rows:large",
                format!("{rows} rows is over {SMALL_ROWS}"),
            );
        }
        let pii: Vec<&str> = tables
            .iter()
            .map(|t| t.rsplit('.').next().unwrap_or(t))
            .filter(|t| PII_TABLES.contains(t))
            .collect();
        if !pii.is_empty() {
            let risk = if rows > LARGE_ROWS {
                Risk::Critical
            } else {
                Risk::High
            };
            c.raise(
                risk,
                "pii",
                format!("tables with personal data: {}", pii.join(", ")),
            );
        }
        if !ALLOWED_DESTINATIONS
            .iter()
            .any(|d| destination.starts_with(d))
        {
            c.raise(
                Risk::Critical,
                "destination:unlisted",
                format!("destination {destination} is not on the allow-list"),
            );
        }
        Ok(c)
    }

    fn route(_action: &Action, c: &Classification) -> Result<Route, String> {
        if c.has_tag("pii") && c.has_tag("destination:unlisted") {
            return Ok(Route::Deny(
                "personal data may only be exported to allow-listed destinations".into(),
            ));
        }
        let modifiable = &["rows", "tables", "destination"];
        Ok(match c.risk {
            Risk::Low => Route::Allow,
            Risk::Medium => Approval::from(&["data-owners"], 1)
                .modifiable(modifiable)
                .into(),
            Risk::High => Approval::from(&["data-owners"], 1)
                .modifiable(modifiable)
                .escalate_to(&["security"])
                .into(),
            Risk::Critical => Approval::from(&["data-owners"], 2)
                .ttl_seconds(4 * 3600)
                .modifiable(modifiable)
                .escalate_to(&["security"])
                .into(),
        })
    }
}

export_policy!(DbExport, no_std);
