//! A client of the service's HTTP API on loopback, holding one bearer key.
//! Each test file adds the calls it needs on top (a local trait).

use actiongate::store::KeyRole;
use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::server::TestServer;

#[derive(Clone)]
pub struct Caller {
    pub key: String,
    pub base: String,
    pub client: Client,
}

impl Caller {
    pub fn new(server: &TestServer, key: String) -> Caller {
        Caller {
            key,
            base: server.url.clone(),
            client: Client::new(),
        }
    }

    /// A caller of the service at `base` (`http://127.0.0.1:PORT`).
    pub fn at(base: &str, key: String) -> Caller {
        Caller {
            key,
            base: base.to_string(),
            client: Client::new(),
        }
    }

    /// A new agent named `name`, owned by `owner`.
    pub async fn agent(server: &TestServer, name: &str, owner: &str) -> Caller {
        Caller::new(server, server.agent(name, owner).await)
    }

    /// A new approver key for the person `email`.
    pub async fn approver(server: &TestServer, email: &str) -> Caller {
        Caller::new(server, server.key(KeyRole::Approver, email).await)
    }

    /// POSTs `body` as JSON to `path` with extra `headers`: the status, the
    /// response headers and the JSON answer.
    pub async fn post_with(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, answer) = self.post_with(path, &body, &[]).await;
        (status, answer)
    }

    /// GETs `path` with extra `headers`.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_with(path, &[]).await
    }
}
