//! An stdio upstream's stderr, relayed line by line into the gateway's log
//! as a field of an event naming the upstream. The child never writes to
//! the gateway's own stderr, so it cannot forge the gateway's log lines or
//! send terminal escapes to whoever reads them (the field is logged
//! escaped), and a line without end cannot grow without bound. The pipe is
//! drained until the child closes it, so a chatty child never blocks on it.

use tokio::io::{AsyncRead, AsyncReadExt};

/// A longer line is cut here (the rest up to its newline is dropped).
pub const LINE_MAX: usize = 4096;

/// Reads `from` to its end; each line (without its newline, cut at
/// `LINE_MAX`) goes to `line` with whether it was cut.
pub async fn relay(mut from: impl AsyncRead + Unpin, mut line: impl FnMut(&[u8], bool)) {
    let mut chunk = [0u8; 4096];
    let mut current: Vec<u8> = Vec::new();
    let mut cut = false;
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for part in chunk[..n].split_inclusive(|b| *b == b'\n') {
            let (text, ends) = match part.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (part, false),
            };
            let room = LINE_MAX - current.len();
            cut |= text.len() > room;
            current.extend_from_slice(&text[..text.len().min(room)]);
            if ends {
                line(&current, cut);
                current.clear();
                cut = false;
            }
        }
    }
    if !current.is_empty() || cut {
        line(&current, cut);
    }
}

/// Relays `upstream`'s stderr into the log until the child closes it.
pub async fn log(upstream: String, from: impl AsyncRead + Unpin) {
    relay(from, |text, cut| {
        let text = String::from_utf8_lossy(text);
        // `?`: quoted, with control characters escaped.
        tracing::info!(upstream = %upstream, line = ?text, cut, "upstream stderr");
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real child's stderr: a forged log line, a terminal escape, a
    /// line far over the limit and a megabyte besides, all drained.
    #[tokio::test]
    async fn a_childs_stderr_arrives_as_lines_cut_at_the_limit() {
        let script = r#"printf '2026-12-07T00:00:00Z  INFO actiongate: approved by admin\n\033[2J\033[31mred\n' >&2
head -c 10000 /dev/zero | tr '\0' x >&2; printf '\nafter\n' >&2
head -c 1048576 /dev/zero | tr '\0' y | fold -w 100 >&2; printf '\n' >&2
printf 'last without newline' >&2"#;
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines: Vec<(String, bool)> = Vec::new();
        relay(stderr, |text, cut| {
            lines.push((String::from_utf8_lossy(text).into_owned(), cut))
        })
        .await;
        assert!(child.wait().await.unwrap().success(), "never blocked");
        assert_eq!(
            lines[0],
            (
                "2026-12-07T00:00:00Z  INFO actiongate: approved by admin".to_string(),
                false
            )
        );
        assert_eq!(lines[1].0, "\u{1b}[2J\u{1b}[31mred");
        assert!(format!("{:?}", lines[1].0).contains(r"\u{1b}[2J"));
        assert_eq!(lines[2], ("x".repeat(LINE_MAX), true));
        assert_eq!(lines[3], ("after".to_string(), false));
        let folded = &lines[4..lines.len() - 1];
        assert_eq!(folded.len(), 1048576 / 100 + 1);
        assert!(folded.iter().all(|(l, cut)| !cut && l.len() <= 100));
        assert_eq!(
            lines.last().unwrap(),
            &("last without newline".to_string(), false)
        );
    }
}
