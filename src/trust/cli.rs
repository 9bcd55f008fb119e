//! `weft genkey`, `weft pubkey`, `weft ca init|sign|revoke`, `weft cert show`.
//!
//! The edge of the trust module: the only code here that reads files, the
//! clock and the OS random source. Exit codes: 0 success, 1 failure, 2 usage.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::armour;
use super::credential::{Credential, CredentialBody, Validity};
use super::derive::{mesh_interface_id, router_id, MeshPrefix};
use super::keys::{CaPublicKey, CaSecretKey, NodePrivateKey, PublicKey, KEY_LEN};
use super::revocation::{self, RevocationList};
use super::time::{iso8601, parse_duration, parse_time};
use crate::babel::Prefix;

pub const USAGE: &str = "\
key and credential commands:
  weft genkey                      print a new WireGuard private key
  weft pubkey [--signing]          read a private key on stdin, print its public key
                                   (--signing: its key for origin-signed announcements)
  weft ca init --out DIR           create a network CA (DIR/ca.key, DIR/ca.pub)
  weft ca sign --ca DIR --name NAME --public-key KEY [--signing-key KEY]
               [--prefix P]... [--group G]... [--valid-for DURATION] [--not-before TIME] --out FILE
                                   issue a credential (DURATION: 90d, 12h, 30m, 1y,
                                   3600s; default 365d; TIME: Unix seconds or
                                   YYYY-MM-DD[THH:MM:SSZ]; default 5 minutes ago)
  weft ca revoke --ca DIR --public-key KEY --out FILE
                                   add KEY to the CA's revocation list FILE
  weft cert show FILE [--json] [--ca DIR]... [--ca-public-key KEY]... [--mesh-prefix P]
                                   show a credential or revocation list (FILE - is
                                   stdin); with a CA given, exit 1 unless the
                                   signature verifies
";

const CA_KEY_FILE: &str = "ca.key";
const CA_PUB_FILE: &str = "ca.pub";
const CA_KEY_LABEL: &str = "WEFT CA PRIVATE KEY";
const DEFAULT_VALIDITY: &str = "365d";
/// Credentials start a little in the past so that a verifier whose clock is
/// slightly behind the signer's accepts them at once.
const NOT_BEFORE_BACKDATE: u64 = 300;
/// Largest key or certificate file read (a revocation list is the largest).
const MAX_FILE_LEN: usize = 512 * 1024;

/// A command that did not run: a usage error (exit 2), a failure (exit 1),
/// or `--help` asked for (its usage on stdout, exit 0).
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Failed(String),
    Help,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
            CliError::Help => f.write_str("help"),
        }
    }
}

/// The lines of [`USAGE`] about `weft COMMAND` (all of it if none are).
fn synopsis(command: &str) -> String {
    let own = format!("weft {command}");
    let lines: Vec<&str> = USAGE
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&own))
        .take_while(|l| !l.contains("  weft ") || l.contains(&own))
        .collect();
    if lines.is_empty() {
        USAGE.to_string()
    } else {
        format!("usage:\n{}\n", lines.join("\n"))
    }
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

fn failed(m: impl Into<String>) -> CliError {
    CliError::Failed(m.into())
}

/// Runs one command; `args[0]` is its name (`genkey`, `pubkey`, `ca`, `cert`).
pub fn run(args: &[String]) -> ExitCode {
    let first = args.first().map(String::as_str).unwrap_or("");
    let sub = args.get(1).map(String::as_str);
    let (command, result) = match (first, sub) {
        ("genkey", _) => ("genkey", genkey(&args[1..])),
        ("pubkey", _) => ("pubkey", pubkey(&args[1..])),
        ("ca", Some("init")) => ("ca init", ca_init(&args[2..])),
        ("ca", Some("sign")) => ("ca sign", ca_sign(&args[2..])),
        ("ca", Some("revoke")) => ("ca revoke", ca_revoke(&args[2..])),
        ("cert", Some("show")) => ("cert show", cert_show(&args[2..])),
        ("ca" | "cert", Some("help" | "--help" | "-h")) => {
            print!("{}", synopsis(first));
            return ExitCode::SUCCESS;
        }
        ("ca", _) => ("ca", Err(usage("ca needs a command: init, sign or revoke"))),
        ("cert", _) => ("cert", Err(usage("cert needs a command: show"))),
        (other, _) => (other, Err(usage(format!("unknown command {other:?}")))),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(m)) => {
            eprintln!("weft {command}: {m}");
            eprint!("{}", synopsis(command));
            ExitCode::from(2)
        }
        Err(CliError::Help) => {
            print!("{}", synopsis(command));
            ExitCode::SUCCESS
        }
        Err(CliError::Failed(m)) => {
            eprintln!("weft {command}: {m}");
            ExitCode::from(1)
        }
    }
}

/// Options as given: `--name VALUE`, `--name=VALUE`, flags, positionals.
struct Options {
    /// Option name and its values, in the order first given (a handful:
    /// a Vec, not one more map type on the router's flash).
    values: Vec<(&'static str, Vec<String>)>,
    flags: Vec<&'static str>,
    positional: Vec<String>,
}

impl Options {
    fn parse(
        args: &[String],
        with_value: &[&'static str],
        flags: &[&'static str],
    ) -> Result<Options, CliError> {
        let mut o = Options { values: Vec::new(), flags: Vec::new(), positional: Vec::new() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--help" || a == "-h" {
                return Err(CliError::Help);
            }
            if !a.starts_with("--") {
                o.positional.push(a.clone());
                continue;
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (a.as_str(), None),
            };
            if let Some(&f) = flags.iter().find(|&&f| f == name) {
                if inline.is_some() {
                    return Err(usage(format!("{f} takes no value")));
                }
                o.flags.push(f);
            } else if let Some(&n) = with_value.iter().find(|&&n| n == name) {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| usage(format!("{n} needs a value")))?,
                };
                match o.values.iter_mut().find(|(k, _)| *k == n) {
                    Some((_, vs)) => vs.push(v),
                    None => o.values.push((n, vec![v])),
                }
            } else {
                return Err(usage(format!("unknown option {name:?}")));
            }
        }
        Ok(o)
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }

    fn all(&self, name: &str) -> &[String] {
        self.values.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_slice()).unwrap_or(&[])
    }

    fn one(&self, name: &str) -> Result<Option<&str>, CliError> {
        match self.all(name) {
            [] => Ok(None),
            [v] => Ok(Some(v)),
            _ => Err(usage(format!("{name} given more than once"))),
        }
    }

    fn required(&self, name: &str) -> Result<&str, CliError> {
        self.one(name)?.ok_or_else(|| usage(format!("{name} is required")))
    }

    fn no_positional(&self) -> Result<(), CliError> {
        match self.positional.first() {
            Some(p) => Err(usage(format!("unexpected argument {p:?}"))),
            None => Ok(()),
        }
    }
}

fn now() -> Result<u64, CliError> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| failed("the system clock is before 1970"))
}

fn random_32() -> Result<[u8; KEY_LEN], CliError> {
    let mut b = [0u8; KEY_LEN];
    getrandom::fill(&mut b).map_err(|e| failed(format!("OS random source: {e}")))?;
    Ok(b)
}

fn genkey(args: &[String]) -> Result<ExitCode, CliError> {
    Options::parse(args, &[], &[])?.no_positional()?;
    warn_if_stdout_is_world_readable();
    let key = NodePrivateKey::from_random(random_32()?);
    println!("{}", key.to_base64());
    Ok(ExitCode::SUCCESS)
}

/// As `wg genkey` does: a private key redirected into a file that others
/// can read deserves a warning.
fn warn_if_stdout_is_world_readable() {
    if let Ok(m) = fs::metadata("/proc/self/fd/1") {
        if m.is_file() && m.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "Warning: writing a private key to a file that others can read; \
                 consider umask 077"
            );
        }
    }
}

fn pubkey(args: &[String]) -> Result<ExitCode, CliError> {
    let o = Options::parse(args, &[], &["--signing"])?;
    o.no_positional()?;
    let mut text = String::new();
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut text)
        .map_err(|e| failed(format!("reading stdin: {e}")))?;
    let key: NodePrivateKey = text.parse().map_err(|e| failed(format!("stdin: private {e}")))?;
    if o.flag("--signing") {
        // The key for origin-signed announcements, for `ca sign --signing-key`.
        println!("{}", crate::base64::encode(&crate::mesh::origin::signing_public(&key)));
    } else {
        println!("{}", key.public_key());
    }
    Ok(ExitCode::SUCCESS)
}

fn read_text(path: &str) -> Result<String, CliError> {
    let mut text = String::new();
    let read = if path == "-" {
        std::io::stdin().take(MAX_FILE_LEN as u64 + 1).read_to_string(&mut text)
    } else {
        fs::File::open(path).and_then(|f| f.take(MAX_FILE_LEN as u64 + 1).read_to_string(&mut text))
    };
    read.map_err(|e| failed(format!("{path}: {e}")))?;
    if text.len() > MAX_FILE_LEN {
        return Err(failed(format!("{path}: larger than {MAX_FILE_LEN} bytes")));
    }
    Ok(text)
}

/// Writes `contents` to a new temporary file beside `path` created with
/// `mode`, then renames it over `path`: readers never see half a file.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CliError> {
    let name = path.file_name().ok_or_else(|| usage(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        failed(format!("writing {}: {e}", path.display()))
    })
}

fn ca_init(args: &[String]) -> Result<ExitCode, CliError> {
    let o = Options::parse(args, &["--out"], &[])?;
    o.no_positional()?;
    let dir = PathBuf::from(o.required("--out")?);
    let key_path = dir.join(CA_KEY_FILE);
    if key_path.exists() {
        return Err(failed(format!("{} already exists; refusing to overwrite a CA key", key_path.display())));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
    let ca = CaSecretKey::from_seed(random_32()?).map_err(|e| failed(e.to_string()))?;
    // create_new: never replace a key, even one created since the check.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| failed(format!("creating {}: {e}", key_path.display())))?;
    f.write_all(armour::encode(CA_KEY_LABEL, ca.seed()).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| failed(format!("writing {}: {e}", key_path.display())))?;
    let pub_line = format!("{}\n", ca.public_key());
    write_atomic(&dir.join(CA_PUB_FILE), pub_line.as_bytes(), 0o644)?;
    println!("CA key id:  {}", ca.key_id());
    println!("public key: {}", ca.public_key());
    Ok(ExitCode::SUCCESS)
}

fn load_ca_secret(dir: &str) -> Result<CaSecretKey, CliError> {
    let path = Path::new(dir).join(CA_KEY_FILE);
    let shown = path.display();
    if let Ok(m) = fs::metadata(&path) {
        if m.permissions().mode() & 0o077 != 0 {
            eprintln!("weft: warning: {shown} can be read by others (mode should be 0600)");
        }
    }
    let text = read_text(&path.to_string_lossy())?;
    let seed = armour::decode(&text, CA_KEY_LABEL, KEY_LEN).map_err(|e| failed(format!("{shown}: {e}")))?;
    let seed: [u8; KEY_LEN] = seed
        .as_slice()
        .try_into()
        .map_err(|_| failed(format!("{shown}: holds {} bytes, not {KEY_LEN}", seed.len())))?;
    CaSecretKey::from_seed(seed).map_err(|e| failed(format!("{shown}: {e}")))
}

fn load_ca_public(dir: &str) -> Result<CaPublicKey, CliError> {
    let path = Path::new(dir).join(CA_PUB_FILE);
    let text = read_text(&path.to_string_lossy())?;
    text.parse().map_err(|e| failed(format!("{}: CA public {e}", path.display())))
}

/// A node's WireGuard key; one of small order would let anyone "share" its
/// secret, so no credential is ever signed for it.
fn parse_node_key(s: &str) -> Result<PublicKey, CliError> {
    let k: PublicKey = s.trim().parse().map_err(|e| usage(format!("--public-key {s:?}: {e}")))?;
    if k.is_low_order() {
        return Err(usage(format!("--public-key {s:?} is of small order: not a usable WireGuard key")));
    }
    Ok(k)
}

fn ca_sign(args: &[String]) -> Result<ExitCode, CliError> {
    let o = Options::parse(
        args,
        &[
            "--ca",
            "--name",
            "--public-key",
            "--signing-key",
            "--prefix",
            "--group",
            "--valid-for",
            "--not-before",
            "--out",
        ],
        &[],
    )?;
    o.no_positional()?;
    let ca_dir = o.required("--ca")?;
    let name = o.required("--name")?.to_owned();
    let public_key = parse_node_key(o.required("--public-key")?)?;
    let signing_key = match o.one("--signing-key")? {
        Some(s) => Some(crate::base64::decode_array::<32>(s.trim()).map_err(|e| {
            usage(format!("--signing-key {s:?}: {e} (the output of `weft pubkey --signing`)"))
        })?),
        None => None,
    };
    let out = o.required("--out")?;
    let prefixes = o
        .all("--prefix")
        .iter()
        .map(|p| p.parse::<Prefix>().map_err(|e| usage(format!("--prefix: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let valid_for = parse_duration(o.one("--valid-for")?.unwrap_or(DEFAULT_VALIDITY))
        .map_err(|e| usage(format!("--valid-for: {e}")))?;
    let now = now()?;
    let not_before = match o.one("--not-before")? {
        Some(t) => parse_time(t).map_err(|e| usage(format!("--not-before: {e}")))?,
        None => now.saturating_sub(NOT_BEFORE_BACKDATE),
    };
    let start = not_before.max(now);
    let not_after = start.checked_add(valid_for).ok_or_else(|| usage("--valid-for: too long"))?;
    let body = CredentialBody {
        public_key,
        name,
        prefixes,
        groups: o.all("--group").to_vec(),
        not_before,
        not_after,
        signing_key,
    };
    // Check the arguments before touching the CA key.
    body.validate().map_err(|e| usage(e.to_string()))?;
    let ca = load_ca_secret(ca_dir)?;
    let cred = Credential::sign(body, &ca).map_err(|e| usage(e.to_string()))?;
    write_atomic(Path::new(out), cred.to_armour().as_bytes(), 0o644)?;
    Ok(ExitCode::SUCCESS)
}

fn ca_revoke(args: &[String]) -> Result<ExitCode, CliError> {
    let o = Options::parse(args, &["--ca", "--public-key", "--out"], &[])?;
    o.no_positional()?;
    let ca_dir = o.required("--ca")?;
    let key = parse_node_key(o.required("--public-key")?)?;
    let out = o.required("--out")?;
    let ca = load_ca_secret(ca_dir)?;
    let now = now()?;
    let list = if Path::new(out).exists() {
        let old = RevocationList::from_armour(&read_text(out)?)
            .map_err(|e| failed(format!("{out}: not a revocation list: {e}")))?;
        match old.with_revoked(key, now, &ca).map_err(|e| failed(format!("{out}: {e}")))? {
            Some(list) => list,
            None => {
                eprintln!("weft ca revoke: {key} is already in {out}; nothing changed");
                return Ok(ExitCode::SUCCESS);
            }
        }
    } else {
        RevocationList::sign(1, now, vec![key], &ca).map_err(|e| failed(e.to_string()))?
    };
    write_atomic(Path::new(out), list.to_armour().as_bytes(), 0o644)?;
    eprintln!("weft ca revoke: {out}: serial {}, {} revoked key(s)", list.serial(), list.revoked().len());
    Ok(ExitCode::SUCCESS)
}

/// The outcome of checking a signature against the CAs given on the
/// command line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SignatureCheck {
    Unchecked,
    Valid,
    Invalid,
    UnknownCa,
}

impl SignatureCheck {
    fn of(cas: &[CaPublicKey], claimed: super::CaKeyId, valid: impl Fn(&CaPublicKey) -> bool) -> Self {
        if cas.is_empty() {
            return SignatureCheck::Unchecked;
        }
        match cas.iter().find(|c| c.key_id() == claimed) {
            None => SignatureCheck::UnknownCa,
            Some(ca) if valid(ca) => SignatureCheck::Valid,
            Some(_) => SignatureCheck::Invalid,
        }
    }

    fn json(self) -> &'static str {
        match self {
            SignatureCheck::Unchecked => "unchecked",
            SignatureCheck::Valid => "valid",
            SignatureCheck::Invalid => "invalid",
            SignatureCheck::UnknownCa => "unknown-ca",
        }
    }

    fn human(self, claimed: super::CaKeyId) -> String {
        match self {
            SignatureCheck::Unchecked => "not checked (give --ca DIR or --ca-public-key KEY)".into(),
            SignatureCheck::Valid => format!("valid (CA {claimed})"),
            SignatureCheck::Invalid => format!("INVALID for CA {claimed}"),
            SignatureCheck::UnknownCa => {
                format!("not checked: signed by CA {claimed}, which was not given")
            }
        }
    }

    fn exit_code(self) -> ExitCode {
        match self {
            SignatureCheck::Unchecked | SignatureCheck::Valid => ExitCode::SUCCESS,
            _ => ExitCode::from(1),
        }
    }
}

fn cert_show(args: &[String]) -> Result<ExitCode, CliError> {
    let o = Options::parse(args, &["--ca", "--ca-public-key", "--mesh-prefix"], &["--json"])?;
    let file = match o.positional.as_slice() {
        [f] => f.as_str(),
        [] => return Err(usage("cert show needs a FILE")),
        [_, extra, ..] => return Err(usage(format!("unexpected argument {extra:?}"))),
    };
    let mut cas = Vec::new();
    for dir in o.all("--ca") {
        cas.push(load_ca_public(dir)?);
    }
    for k in o.all("--ca-public-key") {
        cas.push(k.parse::<CaPublicKey>().map_err(|e| usage(format!("--ca-public-key: {e}")))?);
    }
    let mesh = o
        .one("--mesh-prefix")?
        .map(|p| p.parse::<MeshPrefix>().map_err(|e| usage(format!("--mesh-prefix: {e}"))))
        .transpose()?;
    let json = o.flag("--json");
    let text = read_text(file)?;
    let now = now()?;
    if armour::first_label(&text) == Some(revocation::ARMOUR_LABEL) {
        let list = RevocationList::from_armour(&text).map_err(|e| failed(format!("{file}: {e}")))?;
        let check = SignatureCheck::of(&cas, list.ca_key_id(), |c| list.signature_valid(c));
        show_revocation_list(&list, check, json);
        return Ok(check.exit_code());
    }
    let cred = Credential::from_armour(&text).map_err(|e| failed(format!("{file}: {e}")))?;
    let check = SignatureCheck::of(&cas, cred.ca_key_id(), |c| cred.signature_valid(c));
    show_credential(&cred, check, mesh, now, json);
    Ok(check.exit_code())
}

fn validity_word(v: Validity) -> &'static str {
    match v {
        Validity::NotYetValid => "not-yet-valid",
        Validity::Valid => "valid",
        Validity::Expired => "expired",
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".into();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn interface_id_text(iid: u64) -> String {
    let h = |s: u32| (iid >> s) as u16;
    format!("::{:x}:{:x}:{:x}:{:x}", h(48), h(32), h(16), h(0))
}

fn show_credential(cred: &Credential, check: SignatureCheck, mesh: Option<MeshPrefix>, now: u64, json: bool) {
    let b: &CredentialBody = cred.body();
    let key = &b.public_key;
    let address = mesh.map(|m| m.address_for(key));
    let iid = interface_id_text(mesh_interface_id(key));
    if json {
        let v = serde_json::json!({
            "kind": "credential",
            "name": b.name,
            "public_key": key,
            "router_id": router_id(key),
            "mesh_prefix": mesh.map(|m| m.to_string()),
            "mesh_address": address.map(|a| a.to_string()),
            "mesh_interface_id": iid,
            "prefixes": b.prefixes,
            "groups": b.groups,
            "signing_key": b.signing_key.map(|k| crate::base64::encode(&k)),
            "not_before": iso8601(b.not_before),
            "not_before_unix": b.not_before,
            "not_after": iso8601(b.not_after),
            "not_after_unix": b.not_after,
            "validity": validity_word(b.validity_at(now)),
            "ca_key_id": cred.ca_key_id(),
            "signature": check.json(),
            "skipped_fields": cred.skipped_fields(),
            "size": cred.to_bytes().len(),
        });
        println!("{v:#}");
        return;
    }
    println!("name:          {}", b.name);
    println!("public key:    {key}");
    println!("router-id:     {}", router_id(key));
    match (mesh, address) {
        (Some(m), Some(a)) => println!("mesh address:  {a} (in {m})"),
        _ => println!("mesh address:  {iid} in the mesh prefix (give --mesh-prefix for all of it)"),
    }
    println!("prefixes:      {}", join(&b.prefixes));
    println!("groups:        {}", join(&b.groups));
    match &b.signing_key {
        Some(k) => println!("signing key:   {}", crate::base64::encode(k)),
        None => println!("signing key:   none (its routes are taken without an origin signature)"),
    }
    println!("not before:    {}", iso8601(b.not_before));
    println!("not after:     {}", iso8601(b.not_after));
    println!("now:           {}", validity_word(b.validity_at(now)));
    println!("CA key id:     {}", cred.ca_key_id());
    println!("signature:     {}", check.human(cred.ca_key_id()));
    if !cred.skipped_fields().is_empty() {
        let types: Vec<String> = cred.skipped_fields().iter().map(|t| format!("{t:#04x}")).collect();
        println!("skipped:       unknown fields {}", types.join(", "));
    }
}

fn show_revocation_list(list: &RevocationList, check: SignatureCheck, json: bool) {
    if json {
        let v = serde_json::json!({
            "kind": "revocation-list",
            "ca_key_id": list.ca_key_id(),
            "serial": list.serial(),
            "issued": iso8601(list.issued()),
            "issued_unix": list.issued(),
            "revoked": list.revoked(),
            "signature": check.json(),
            "skipped_fields": list.skipped_fields(),
        });
        println!("{v:#}");
        return;
    }
    println!("revocation list");
    println!("CA key id:     {}", list.ca_key_id());
    println!("serial:        {}", list.serial());
    println!("issued:        {}", iso8601(list.issued()));
    println!("signature:     {}", check.human(list.ca_key_id()));
    println!("revoked keys:  {}", list.revoked().len());
    for k in list.revoked() {
        println!("  {k}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_forms_and_errors() {
        let o = Options::parse(
            &args(&["--a", "1", "--b=2", "--a", "3", "pos", "--f"]),
            &["--a", "--b"],
            &["--f"],
        )
        .unwrap();
        assert_eq!(o.all("--a"), &["1".to_string(), "3".to_string()]);
        assert_eq!(o.one("--b").unwrap(), Some("2"));
        assert!(o.one("--a").is_err(), "repeated single option");
        assert!(o.flag("--f"));
        assert_eq!(o.positional, vec!["pos".to_string()]);
        assert!(matches!(o.required("--c"), Err(CliError::Usage(_))));
        assert!(matches!(Options::parse(&args(&["--x"]), &["--a"], &[]), Err(CliError::Usage(_))));
        assert!(matches!(Options::parse(&args(&["--a"]), &["--a"], &[]), Err(CliError::Usage(_))));
        assert!(matches!(Options::parse(&args(&["--f=1"]), &[], &["--f"]), Err(CliError::Usage(_))));
    }

    #[test]
    fn interface_id_is_printed_like_an_address_tail() {
        assert_eq!(interface_id_text(0x205d_38b1_835e_c8d4), "::205d:38b1:835e:c8d4");
        assert_eq!(interface_id_text(1), "::0:0:0:1");
    }
}
