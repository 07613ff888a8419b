//! audit: independent checks over what the host stored. Reads only.

pub mod verify;
