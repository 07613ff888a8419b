//! audit: independent checks over what the host stored. Reads only.

pub mod bundle;
pub mod changes;
pub mod recorded;
pub mod replay;
pub mod story;
pub mod verify;
