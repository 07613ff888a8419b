//! audit: independent checks over what the host stored. Reads only.

pub mod backtest;
pub mod bundle;
pub mod changes;
pub mod diff;
pub mod recorded;
pub mod replay;
pub mod story;
pub mod verify;
