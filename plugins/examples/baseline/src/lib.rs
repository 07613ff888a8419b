//! The catch-all for action kinds no other plugin is bound to: nothing
//! unknown runs unseen. Medium risk, one approver from the default group.

#![no_std]

use actiongate_sdk::prelude::*;

struct Baseline;

impl Policy for Baseline {
    fn describe() -> PluginInfo {
        PluginInfo::new("baseline", "1.0.0", &["*"])
    }

    fn classify(action: &Action) -> Result<Classification, String> {
        let mut c = Classification::new(Risk::Medium);
        c.tags.push("unbound-kind".into());
        c.reasons
            .push(format!("no policy is bound to kind {}", action.kind));
        Ok(c)
    }

    fn route(_action: &Action, _c: &Classification) -> Result<Route, String> {
        Ok(Approval::from(&["default-approvers"], 1).into())
    }
}

export_policy!(Baseline, no_std);
