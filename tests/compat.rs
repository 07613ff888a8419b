//! Evidence written by an earlier release stays verifiable: a small SQLite
//! log recorded by the release before the module refactor (issue 17) through
//! its real API (`fixtures/compat/make`): allow, deny, a modify and approvals,
//! a reviewer's deny, outcomes, a four-eyes binding change and the plugin
//! registrations. Today's `audit verify`, `audit replay`, `audit export` and
//! `verify-bundle` must answer as they did then, and today's typed event
//! payloads must read every recorded event and write back its exact bytes.

use std::path::{Path, PathBuf};

use actiongate::cli::{run, Cli};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/compat");
/// Every action of the fixture was submitted on this day.
const SINCE: &str = "2026-01-01";

/// A private copy of the fixture (SQLite writes beside the file it opens)
/// and a CLI config naming its log origin and a compile cache.
struct Copy {
    dir: tempfile::TempDir,
    url: String,
    config: PathBuf,
    vkey: String,
}

fn copy() -> Copy {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("actiongate.db");
    std::fs::copy(Path::new(FIXTURE).join("actiongate.db"), &db).unwrap();
    let vkey = std::fs::read_to_string(Path::new(FIXTURE).join("log.vkey"))
        .unwrap()
        .trim()
        .to_owned();
    let config = dir.path().join("audit.toml");
    std::fs::write(
        &config,
        format!(
            "[evidence]\norigin = \"compat.actiongate.test/log\"\nkey_path = {:?}\n\n[sandbox]\ncache_dir = {:?}\n",
            dir.path().join("no-such.key"),
            actiongate_tests::cache_dir(),
        ),
    )
    .unwrap();
    Copy {
        url: format!("sqlite://{}", db.display()),
        dir,
        config,
        vkey,
    }
}

impl Copy {
    async fn cli(&self, args: &[&str]) -> (u8, String) {
        let mut argv = vec![
            "actiongate",
            "--config",
            self.config.to_str().unwrap(),
            "--database-url",
            &self.url,
        ];
        argv.extend_from_slice(args);
        let cli = <Cli as clap::Parser>::try_parse_from(&argv).unwrap();
        let mut out = Vec::new();
        let code = run(cli, &mut out).await;
        (code, String::from_utf8(out).unwrap())
    }

    /// Exports what `selection` selects to a bundle named `name`, then
    /// checks the bundle offline: `verify-bundle`'s exit code and output.
    async fn export_and_verify(&self, selection: &[&str], name: &str) -> (u8, String) {
        let bundle = self.dir.path().join(name);
        let mut args = vec!["audit", "export"];
        args.extend_from_slice(selection);
        args.extend(["--vkey", &self.vkey, "--out", bundle.to_str().unwrap()]);
        let (code, out) = self.cli(&args).await;
        assert_eq!(code, 0, "{out}");
        self.cli(&[
            "audit",
            "verify-bundle",
            bundle.to_str().unwrap(),
            "--key",
            &self.vkey,
        ])
        .await
    }
}

#[tokio::test]
async fn the_recorded_log_still_verifies() {
    let c = copy();
    let (code, out) = c.cli(&["audit", "verify", "--vkey", &c.vkey]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK\n"), "{out}");
    // Every event is under the last signed checkpoint.
    let counts = out.lines().nth(1).unwrap();
    let events: u64 = counts
        .strip_prefix("events: ")
        .and_then(|s| s.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(events, 56, "{out}");
    assert!(counts.ends_with(&format!("integrated: {events}")), "{out}");

    // Another key of the same name is refused: the check can fail.
    let other = actiongate::evidence::LogKey::load_or_generate(
        &c.dir.path().join("other.key"),
        "compat.actiongate.test/log",
    )
    .unwrap();
    let (code, out) = c
        .cli(&["audit", "verify", "--vkey", other.verifier_key()])
        .await;
    assert_eq!(code, 1, "{out}");
}

#[tokio::test]
async fn the_recorded_decisions_still_replay() {
    let c = copy();
    let (code, out) = c.cli(&["audit", "replay", "--since", SINCE]).await;
    assert_eq!(code, 0, "{out}");
    // Six plugin decisions (the modify's re-evaluation and the panic's
    // fail-closed one among them) and the two four-eyes rulings, which no
    // plugin made.
    assert!(
        out.contains(
            "replayed: 8, match: 6, mismatch: 0, missing plugin: 0, skipped: 2, malformed: 0"
        ),
        "{out}"
    );
}

/// The agents' actions: everything but the two four-eyes binding changes,
/// which the story rules of this release refuse (below).
const AGENTS_UNTIL: &str = "2026-12-06T07:30:11.700Z";
/// The approved four-eyes binding change.
const BIND_ACTION: &str = "01a24a42-a6b0-76e4-8876-20e3d7c49e07";

#[tokio::test]
async fn the_recorded_actions_still_export_and_verify_offline() {
    let c = copy();
    let (code, out) = c
        .export_and_verify(
            &["--since", SINCE, "--until", AGENTS_UNTIL, "--with-plugins"],
            "agents.json",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK\n"), "{out}");
    assert!(
        out.contains("events: 34, actions: 5, checkpoint: 56"),
        "{out}"
    );
    // Every decision replayed from the bundle's own plugin bytes, the
    // shadows' too.
    assert!(
        out.contains("replayed: 11, match: 11, mismatch: 0, missing plugin: 0, skipped: 0"),
        "{out}"
    );

    // The four-eyes change reads as it did: this release's story rules
    // expect the submitter to be the action's agent and an executor to hold
    // a grant, which the host's own actions never have. (A known limit of
    // `verify-bundle`, kept here so a refactor cannot change it unnoticed.)
    let (code, out) = c
        .export_and_verify(&["--action", BIND_ACTION], "bind.json")
        .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("events: 9, actions: 1, checkpoint: 56"),
        "{out}"
    );
    assert!(
        out.contains(
            "seq 40 field actor: submitted by sam@example.com, the action is actiongate's"
        ),
        "{out}"
    );
    assert!(
        out.contains("seq 47 field jti: executed without an earlier grant"),
        "{out}"
    );
    assert_eq!(
        out.matches(&format!("action {BIND_ACTION}:")).count(),
        2,
        "{out}"
    );

    // The change-approval CSV reads every action's story.
    let csv = c.dir.path().join("all.csv");
    let (code, out) = c
        .cli(&[
            "audit",
            "export",
            "--since",
            SINCE,
            "--format",
            "csv",
            "--out",
            csv.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    let rows = std::fs::read_to_string(&csv).unwrap();
    let expected =
        std::fs::read_to_string(std::path::Path::new(FIXTURE).join("changes.csv")).unwrap();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn every_recorded_payload_reads_back_to_its_exact_bytes() {
    use actiongate::evidence::{canonical, payload, StoredEvent};
    use actiongate::store::{Store, StoreOptions};

    let c = copy();
    let opts = StoreOptions {
        migrate: false,
        ..StoreOptions::default()
    };
    let store = Store::connect_with(&c.url, &opts).await.unwrap();
    let rows = store.events_range(0, 56).await.unwrap();
    assert_eq!(rows.len(), 56);
    let mut kinds = std::collections::BTreeSet::new();
    for row in rows {
        let event = StoredEvent::from_canonical(row.canonical, row.leaf_hash).unwrap();
        let typed = payload::reread(&event).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            canonical::value_to_string(&typed).unwrap(),
            canonical::value_to_string(&event.payload).unwrap(),
            "seq {} ({})",
            event.seq,
            event.kind
        );
        // And the stored leaf holds exactly those bytes.
        assert!(
            event
                .canonical
                .contains(&canonical::value_to_string(&typed).unwrap()),
            "seq {}",
            event.seq
        );
        kinds.insert(event.kind.as_str());
    }
    // Every kind the host writes but `notified` and `escalated` is on record.
    assert_eq!(kinds.len(), 15, "{kinds:?}");

    // The check can fail: a payload that lost a field does not read back.
    let mut event = StoredEvent::from_canonical(
        store.events_range(0, 1).await.unwrap().remove(0).canonical,
        [0; 32],
    )
    .unwrap();
    event.payload.as_object_mut().unwrap().remove("sha256");
    assert!(payload::reread(&event).is_err(), "{:?}", event.kind);
}
