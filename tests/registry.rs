//! The plugin registry: every plugin the service binds is stored by the
//! sha256 of its exact bytes, once, with a `plugin-registered` event.

use actiongate::evidence::EventKind;
use actiongate::examples::example;
use actiongate::sandbox::sha256_hex;
use actiongate_tests::server::TestServer;

#[tokio::test]
async fn bound_plugins_are_stored_by_sha256_once() {
    let server = TestServer::start().await;
    let store = &server.app.gate.store;
    let stored = store.plugins().await.unwrap();
    for name in ["db-export", "iam-change", "prod-ops", "baseline"] {
        let wasm = example(name).unwrap().wasm;
        let sha = sha256_hex(wasm);
        let row = store.plugin(&sha).await.unwrap().expect("stored");
        assert_eq!(row.bytes, wasm, "{name}: the exact bytes");
        assert_eq!(row.name, name);
        assert_eq!(row.registered_by, "config");
        assert!(stored.iter().any(|p| p.sha256 == sha && p.bytes.is_empty()));
    }
    assert_eq!(stored.len(), 4);

    let registrations = || async {
        let log = &server.app.evidence;
        let size = log.committed_size().await.unwrap();
        log.entries(0, size)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EventKind::PluginRegistered)
            .map(|e| e.payload["sha256"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(registrations().await.len(), 4);
    // A second replica binds the same plugins: nothing new is stored or recorded.
    let _replica = server.replica().await;
    assert_eq!(registrations().await.len(), 4);
    assert_eq!(store.plugins().await.unwrap().len(), 4);
}

#[tokio::test]
async fn postgres_refuses_a_row_whose_key_is_not_the_hash_of_its_bytes() {
    let server = TestServer::start().await;
    let pool = sqlx::PgPool::connect(&server.database_url).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO plugins (sha256, name, version, wit_version, bytes, registered_at, registered_by)
         VALUES ($1, 'x', '1', '0.1.0', '\\x00', now(), 'mallory')",
    )
    .bind("0".repeat(64))
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("plugins_sha256_is_hash_of_bytes"),
        "{err}"
    );
}
