//! A policy built against a contract version the host does not support
//! (see wit/): the host must refuse it at load, naming both versions.

include!("../../contract-body.rs");
