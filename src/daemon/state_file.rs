//! The state file: router-id and seqno survive restarts, so that after a
//! restart our updates are not older than what the mesh remembers (which
//! would make them unfeasible until the old state timed out); and the time
//! floor (`time-floor`, Unix seconds): the time was at least that when it
//! was written, whatever the wall clock says at the next start.
//!
//! Format: `key value` lines, babeld-style, written atomically (temp file +
//! rename) so a crash mid-write never leaves a truncated file.

use std::io::Write;
use std::path::Path;

use crate::babel::{RouterId, SeqNo};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistentState {
    pub router_id: RouterId,
    pub seqno: SeqNo,
    /// The mesh core's time floor, when there is a mesh.
    pub time_floor: Option<u64>,
}

/// Parses the file's text; unknown keys are ignored, a malformed value is an
/// error naming the line.
pub fn parse(text: &str) -> Result<(Option<RouterId>, Option<SeqNo>), String> {
    let (mut rid, mut seqno) = (None, None);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match k {
            "router-id" => rid = Some(v.trim().parse().map_err(|e| format!("line {}: {e}", i + 1))?),
            "seqno" => {
                seqno = Some(SeqNo(
                    v.trim().parse().map_err(|_| format!("line {}: seqno {v:?} is not 0..65535", i + 1))?,
                ))
            }
            _ => {}
        }
    }
    Ok((rid, seqno))
}

/// The time floor in the file's text, if there is a valid one.
pub fn parse_time_floor(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.trim().strip_prefix("time-floor")?.trim().parse().ok())
}

/// The time floor the last run saved (none if there is no readable file).
pub fn load_time_floor(path: &Path) -> Option<u64> {
    parse_time_floor(&std::fs::read_to_string(path).ok()?)
}

pub fn load(path: &Path) -> Result<(Option<RouterId>, Option<SeqNo>), String> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse(&t).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, None)),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

pub fn save(path: &Path, st: &PersistentState) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "router-id {}\nseqno {}", st.router_id, st.seqno.0)?;
        if let Some(t) = st.time_floor {
            writeln!(f, "time-floor {t}")?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("weft-state-{}", std::process::id()));
        let p = dir.join("state");
        let st = PersistentState {
            router_id: "02:00:00:00:00:00:00:07".parse().unwrap(),
            seqno: SeqNo(4242),
            time_floor: Some(1_790_000_000),
        };
        save(&p, &st).unwrap();
        assert_eq!(load(&p).unwrap(), (Some(st.router_id), Some(st.seqno)));
        assert_eq!(load_time_floor(&p), Some(1_790_000_000));
        assert_eq!(load_time_floor(&dir.join("absent")), None);
        assert_eq!(parse_time_floor("seqno 3\ntime-floor x\n"), None);
        assert_eq!(load(&dir.join("absent")).unwrap(), (None, None));
        assert!(parse("seqno 70000").unwrap_err().contains("line 1"));
        assert!(parse("router-id nope").is_err());
        assert_eq!(parse("# comment\nfuture-key 1\nseqno 3\n").unwrap(), (None, Some(SeqNo(3))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
