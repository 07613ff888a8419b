//! Restarts and deploys (`ops.restart`, `ops.deploy`).
//!
//! Non-production resources run at once. Production needs the on-call
//! engineer; outside the change window (Monday to Thursday, 09:00 to 16:00
//! UTC, judged from requested-at) it needs a second approver too.

#![no_std]

use actiongate_sdk::prelude::*;

struct ProdOps;

/// A resource is production when its environment param says so, or when a
/// path segment of the resource is `prod` or starts with `prod-`.
fn is_prod(action: &Action, params: &Params) -> Result<bool, String> {
    if let Some(env) = params.get::<String>("environment")? {
        return Ok(env == "prod" || env == "production");
    }
    Ok(action
        .resource
        .split(['/', ':', '.'])
        .any(|seg| seg == "prod" || seg == "production" || seg.starts_with("prod-")))
}

fn in_change_window(at: &Instant) -> bool {
    (1..=4).contains(&at.weekday) && (9..16).contains(&at.hour)
}

impl Policy for ProdOps {
    fn describe() -> PluginInfo {
        PluginInfo::new("prod-ops", "1.0.0", &["ops.restart", "ops.deploy"])
    }

    fn classify(action: &Action) -> Result<Classification, String> {
        let params = action.params()?;
        if !is_prod(action, &params)? {
            let mut c = Classification::new(Risk::Low);
            c.tags.push("env:non-prod".into());
            c.reasons
                .push(format!("{} is not production", action.resource));
            return Ok(c);
        }
        let mut c = Classification::new(Risk::Medium);
        c.raise(
            Risk::High,
            "env:prod",
            format!("{} is production", action.resource),
        );
        let at = action.requested_at()?;
        if !in_change_window(&at) {
            c.raise(
                Risk::Critical,
                "outside-change-window",
                format!(
                    "requested {:04}-{:02}-{:02} {:02}:{:02} UTC, outside Mon-Thu 09:00-16:00",
                    at.year, at.month, at.day, at.hour, at.minute
                ),
            );
        }
        Ok(c)
    }

    fn route(_action: &Action, c: &Classification) -> Result<Route, String> {
        if !c.has_tag("env:prod") {
            return Ok(Route::Allow);
        }
        let quorum = if c.has_tag("outside-change-window") {
            2
        } else {
            1
        };
        Ok(Approval::from(&["on-call"], quorum)
            .ttl_seconds(1800)
            .modifiable(&["version", "replicas"])
            .escalate_to(&["sre-leads"])
            .into())
    }
}

export_policy!(ProdOps, no_std);
