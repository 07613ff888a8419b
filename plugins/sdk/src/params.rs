//! Typed access to an action's params (a JSON object), with errors that say
//! which field was wrong, so a failing plugin explains itself in the evidence.

use alloc::format;
use alloc::string::String;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// An action's params object.
#[derive(Debug, Clone)]
pub struct Params(Map<String, Value>);

impl Params {
    pub(crate) fn parse(json: &str) -> Result<Self, String> {
        match serde_json::from_str(json) {
            Ok(Value::Object(map)) => Ok(Params(map)),
            Ok(_) => Err("params must be a JSON object".into()),
            Err(e) => Err(format!("params are not valid JSON: {e}")),
        }
    }

    /// The field `key` as `T`; `None` when absent or null, an error when of the wrong type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::deserialize(v)
                .map(Some)
                .map_err(|e| format!("params.{key}: {e}")),
        }
    }

    /// The field `key` as `T`; an error when absent or of the wrong type.
    pub fn require<T: DeserializeOwned>(&self, key: &str) -> Result<T, String> {
        self.get(key)?
            .ok_or_else(|| format!("params.{key} is required"))
    }

    /// The whole object as a typed struct.
    pub fn into_typed<T: DeserializeOwned>(self) -> Result<T, String> {
        T::deserialize(Value::Object(self.0)).map_err(|e| format!("params: {e}"))
    }

    /// The raw JSON value of `key`.
    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}
