//! OpenWrt's UCI file syntax, read the way libuci reads it (`uci import`,
//! strict mode), into an untyped [`Document`].
//!
//! ```text
//! package weft                       # optional
//! config TYPE ['NAME']               # opens a section; no name: anonymous
//!     option NAME VALUE              # sets (or replaces) a single value
//!     list NAME VALUE                # appends to a list
//! ```
//!
//! What libuci does and we do too:
//! - keywords may be abbreviated to their first letter (`c`, `o`, `l`, `p`);
//! - `;` ends a statement, so several can share a line (but libuci drops
//!   the rest of the line after a `;` glued to a plain word, as in
//!   `option a 1;option b 2`: we refuse that instead of disagreeing);
//! - `#` outside quotes starts a comment, also in the middle of a word;
//! - a value is made of adjacent parts, each unquoted, `'single'` or
//!   `"double"` quoted: `'a b'"c"d` is `a bcd`; quoted parts may span lines
//!   (the newline is kept in the value);
//! - a backslash outside single quotes takes the next character literally
//!   (`\"` is `"`, `\n` is `n`: libuci does not decode escapes), and a
//!   backslash at the end of a line joins the next line; inside single
//!   quotes a backslash is an ordinary character;
//! - option and section names are letters, digits and `_`; section types
//!   any printable ASCII; the package name may also contain `-`;
//! - `option NAME ''` (or no value) is ignored (it does not delete an
//!   earlier value); setting an option again replaces it; `list` after `option` of the same name turns it into
//!   a list, `option` after `list` replaces the list;
//! - a named section opened twice is one section: the second adds to the
//!   first (a different type is an error).
//!
//! Where we are stricter: control characters other than tab, CR and LF are
//! refused anywhere; an empty extra argument (`option a b ''`) is refused
//! where libuci ignores it; and repeated options, sections or `package`
//! statements give a warning.
//!
//! This was checked against libuci itself (built from source, `uci_import`
//! in strict mode) on tens of thousands of random inputs: weft never accepts
//! a file libuci refuses, and never reads an accepted file differently.

use std::collections::HashMap;

use super::error::{quote, ConfigError, Warning};

/// A parsed UCI file: its sections in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// The `package` statement, if the file has one.
    pub package: Option<Package>,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section type (`config TYPE`).
    pub section_type: String,
    /// `None` for an anonymous section.
    pub name: Option<String>,
    /// Position among the sections of the same type, as in uci's
    /// `@TYPE[INDEX]` notation (counts named and anonymous sections).
    pub index: usize,
    /// Line of the `config` statement.
    pub line: usize,
    /// Options in the order they were first set.
    pub options: Vec<UciOption>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciOption {
    pub name: String,
    pub value: UciValue,
    /// Line of the `option`/`list` statement that last set it (of the
    /// first item, for a list).
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UciValue {
    /// Set by `option`.
    Single(String),
    /// Built by `list`, items in order.
    List(Vec<ListItem>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    pub value: String,
    pub line: usize,
}

impl Section {
    pub fn option(&self, name: &str) -> Option<&UciOption> {
        self.options.iter().find(|o| o.name == name)
    }

    /// How messages name this section: `interface 'mesh'` or, when
    /// anonymous, `announce @announce[2]` (uci's notation).
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} '{}'", self.section_type, n),
            None => format!("{} @{}[{}]", self.section_type, self.section_type, self.index),
        }
    }
}

impl Document {
    /// Sections of one type, in file order.
    pub fn sections_of<'a>(&'a self, section_type: &'a str) -> impl Iterator<Item = &'a Section> {
        self.sections.iter().filter(move |s| s.section_type == section_type)
    }
}

/// Parses UCI text. `file` only names the source in messages.
pub fn parse(text: &str, file: &str) -> Result<(Document, Vec<Warning>), ConfigError> {
    check_control_chars(text, file)?;
    let mut p = Parser {
        cur: Cursor { s: text.as_bytes(), pos: 0, line: 1, col: 1 },
        file,
        doc: Document::default(),
        warnings: Vec::new(),
        current: None,
        by_name: HashMap::new(),
        type_count: HashMap::new(),
        semicolon_drops_rest: false,
    };
    p.run()?;
    Ok((p.doc, p.warnings))
}

/// Refuses C0 control characters (and DEL) other than tab, CR and LF:
/// libuci would silently cut a value at a NUL, and nothing legitimate in a
/// configuration needs the others.
fn check_control_chars(text: &str, file: &str) -> Result<(), ConfigError> {
    // Byte-wise: the characters looked for are ASCII, and counting only
    // bytes that start a character gives the column in characters.
    let (mut line, mut col) = (1, 1);
    for &b in text.as_bytes() {
        match b {
            b'\n' => {
                line += 1;
                col = 1;
                continue;
            }
            b'\t' | b'\r' => {}
            0..=0x1f | 0x7f => {
                return Err(ConfigError::syntax(
                    file,
                    line,
                    col,
                    format!("control character U+{b:04X} is not allowed"),
                ))
            }
            _ if b & 0xC0 == 0x80 => continue,
            _ => {}
        }
        col += 1;
    }
    Ok(())
}

/// A position-tracking reader over the bytes of valid UTF-8 text. All the
/// syntax is ASCII, so splitting at syntax bytes keeps UTF-8 intact.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
    /// Column in characters, not bytes.
    col: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.s.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            // Not a UTF-8 continuation byte: a new character.
            self.col += 1;
        }
        Some(b)
    }

    /// A backslash followed by a line end (LF or CRLF) joins two lines.
    /// Returns the length of such a sequence at the cursor, or 0.
    fn line_continuation_len(&self) -> usize {
        match (self.peek(), self.peek_at(1), self.peek_at(2)) {
            (Some(b'\\'), Some(b'\n'), _) => 2,
            (Some(b'\\'), Some(b'\r'), Some(b'\n')) => 3,
            _ => 0,
        }
    }

    fn skip(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }
}

/// Whitespace inside a statement (libuci uses `isspace`; LF is handled
/// separately because it ends the statement).
fn is_hspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

/// One argument of a statement, after quote removal.
struct Arg {
    value: String,
    line: usize,
    col: usize,
}

struct Parser<'a> {
    cur: Cursor<'a>,
    file: &'a str,
    doc: Document,
    warnings: Vec<Warning>,
    /// Index into `doc.sections` of the section options go to.
    current: Option<usize>,
    /// Named sections, for merging a section opened twice.
    by_name: HashMap<String, usize>,
    /// Sections seen so far per type, for `@TYPE[INDEX]`.
    type_count: HashMap<String, usize>,
    /// The current statement ended with a `;` glued to a plain word, after
    /// which libuci ignores the rest of the line.
    semicolon_drops_rest: bool,
}

impl Parser<'_> {
    fn err(&self, line: usize, col: usize, msg: String) -> ConfigError {
        ConfigError::syntax(self.file, line, col, msg)
    }

    fn run(&mut self) -> Result<(), ConfigError> {
        loop {
            // Between statements: blank space, empty lines, comments. A
            // `;` here ends no statement, and libuci refuses it.
            match self.cur.peek() {
                None => return Ok(()),
                Some(b) if is_hspace(b) || b == b'\n' => {
                    self.cur.bump();
                }
                Some(b'#') => self.skip_comment(),
                Some(b';') => {
                    return Err(self.err(
                        self.cur.line,
                        self.cur.col,
                        "';' with no statement before it".into(),
                    ))
                }
                Some(_) => self.statement()?,
            }
        }
    }

    /// Skips to the end of the line in one step (comments are most of a
    /// commented configuration's bytes).
    fn skip_comment(&mut self) {
        let rest = &self.cur.s[self.cur.pos..];
        let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        self.cur.col += rest[..len].iter().filter(|&&b| b & 0xC0 != 0x80).count();
        self.cur.pos += len;
    }

    fn statement(&mut self) -> Result<(), ConfigError> {
        let (line, col) = (self.cur.line, self.cur.col);
        // libuci splits the keyword off with strtok: no quoting applies.
        let start = self.cur.pos;
        while let Some(b) = self.cur.peek() {
            if is_hspace(b) || matches!(b, b'\n' | b';' | b'#') {
                break;
            }
            self.cur.bump();
        }
        let keyword = String::from_utf8_lossy(&self.cur.s[start..self.cur.pos]).into_owned();
        self.semicolon_drops_rest = false;
        let args = self.args()?;
        // `config TYPE [NAME]`, `option NAME [VALUE]`: the second argument
        // is optional, which changes what a `;` after the first means.
        let optional_missing = args.len() < 2;
        match keyword.as_str() {
            "package" | "p" => self.package(line, col, args)?,
            "config" | "c" => self.config(line, col, args)?,
            "option" | "o" => self.option(line, col, args, false)?,
            "list" | "l" => self.option(line, col, args, true)?,
            _ => {
                return Err(self.unknown_statement(line, col, &keyword));
            }
        }
        if self.cur.peek() == Some(b';') {
            let (l, c) = (self.cur.line, self.cur.col);
            self.cur.bump();
            let rest = &self.cur.s[self.cur.pos..];
            let next = rest.iter().find(|&&b| !is_hspace(b)).copied();
            if self.semicolon_drops_rest {
                // libuci drops the (blank) rest of the line, `;`s included.
                while matches!(self.cur.peek(), Some(b) if is_hspace(b) || b == b';') {
                    self.cur.bump();
                }
            } else if optional_missing && !matches!(keyword.as_str(), "package" | "p") {
                // libuci takes this `;` as the absent optional argument and
                // reads the rest of the line as more arguments.
                if !matches!(next, None | Some(b'\n' | b'#')) {
                    return Err(self.err(
                        l,
                        c,
                        "';' where uci expects a name or value: it would read the rest of \
                         the line as extra arguments (put the next statement on its own line)"
                            .into(),
                    ));
                }
            } else if next == Some(b'\n') {
                // libuci reads the line end after it as an empty command.
                return Err(self.err(
                    l,
                    c,
                    "';' at the end of a line: uci reads an empty command after it".into(),
                ));
            }
        }
        Ok(())
    }

    fn unknown_statement(&self, line: usize, col: usize, keyword: &str) -> ConfigError {
        self.err(
            line,
            col,
            format!("unknown statement {}: expected config, option, list or package", quote(keyword)),
        )
    }

    /// Reads arguments up to the end of the statement (line end, `;`, `#`
    /// or end of text). The terminator is left for `run`.
    fn args(&mut self) -> Result<Vec<Arg>, ConfigError> {
        let mut args = Vec::new();
        loop {
            match self.cur.peek() {
                Some(b) if is_hspace(b) => {
                    self.cur.bump();
                }
                Some(b'\\') if self.cur.line_continuation_len() > 0 => {
                    let (line, col) = (self.cur.line, self.cur.col);
                    let n = self.cur.line_continuation_len();
                    self.cur.skip(n);
                    // libuci starts an argument at the backslash, and a
                    // blank right after the joined line ends it: an empty
                    // argument, which matters only if more words follow.
                    let rest = &self.cur.s[self.cur.pos..];
                    let indented = self.cur.peek().is_some_and(is_hspace);
                    let more = rest
                        .iter()
                        .find(|&&b| !is_hspace(b))
                        .is_some_and(|&b| !matches!(b, b'\n' | b';' | b'#'));
                    if indented && more {
                        args.push(Arg { value: String::new(), line, col });
                    }
                }
                None | Some(b'\n' | b';' | b'#') => return Ok(args),
                Some(_) => args.push(self.word()?),
            }
        }
    }

    /// One argument: adjacent unquoted, single- and double-quoted parts.
    fn word(&mut self) -> Result<Arg, ConfigError> {
        let (line, col) = (self.cur.line, self.cur.col);
        let mut out: Vec<u8> = Vec::new();
        // Whether quotes or backslashes were removed (see the `;` case).
        let mut rewritten = false;
        loop {
            match self.cur.peek() {
                None => break,
                Some(b';') if !rewritten && self.only_blank_after_semicolon() => {
                    self.semicolon_drops_rest = true;
                    break;
                }
                Some(b';') if !rewritten => {
                    // libuci ends the word by overwriting this `;` with the
                    // string terminator, and so silently drops the rest of
                    // the line. Refuse rather than read something else.
                    return Err(self.err(
                        self.cur.line,
                        self.cur.col,
                        format!(
                            "';' right after {}: uci would ignore the rest of this line; \
                             put a space before ';'",
                            quote(&String::from_utf8_lossy(&out))
                        ),
                    ));
                }
                Some(b) if is_hspace(b) || matches!(b, b'\n' | b';' | b'#') => break,
                Some(b'\'') => {
                    rewritten = true;
                    self.single_quoted(&mut out)?
                }
                Some(b'"') => {
                    rewritten = true;
                    self.double_quoted(&mut out)?
                }
                Some(b'\\') => {
                    rewritten = true;
                    let n = self.cur.line_continuation_len();
                    if n > 0 {
                        self.cur.skip(n);
                    } else {
                        self.cur.bump();
                        // A backslash at the very end of the text adds nothing.
                        if let Some(b) = self.cur.bump() {
                            out.push(b);
                        }
                    }
                }
                Some(_) => {
                    if let Some(b) = self.cur.bump() {
                        out.push(b);
                    }
                }
            }
        }
        // Only whole characters were copied (the syntax bytes are ASCII and
        // an escaped byte is followed by the rest of its character), so this
        // conversion cannot fail on UTF-8 input; lossy keeps it panic-free.
        let value =
            String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(Arg { value, line, col })
    }

    /// True if, after the `;` at the cursor, the line holds only blanks,
    /// more `;` or a comment: then libuci's dropping it loses nothing.
    fn only_blank_after_semicolon(&self) -> bool {
        let rest = &self.cur.s[self.cur.pos + 1..];
        match rest.iter().find(|&&b| !is_hspace(b) && b != b';') {
            None | Some(b'\n' | b'#') => true,
            Some(_) => false,
        }
    }

    /// `'...'`: everything up to the next `'` is literal, newlines included.
    fn single_quoted(&mut self, out: &mut Vec<u8>) -> Result<(), ConfigError> {
        let (ql, qc) = (self.cur.line, self.cur.col);
        self.cur.bump();
        loop {
            match self.cur.bump() {
                None => return Err(self.unterminated('\'', ql, qc)),
                Some(b'\'') => return Ok(()),
                Some(b) => out.push(b),
            }
        }
    }

    /// `"..."`: a backslash takes the next character literally, or joins
    /// the next line when it ends one.
    fn double_quoted(&mut self, out: &mut Vec<u8>) -> Result<(), ConfigError> {
        let (ql, qc) = (self.cur.line, self.cur.col);
        self.cur.bump();
        loop {
            let n = self.cur.line_continuation_len();
            if n > 0 {
                self.cur.skip(n);
                continue;
            }
            match self.cur.bump() {
                None => return Err(self.unterminated('"', ql, qc)),
                Some(b'"') => return Ok(()),
                Some(b'\\') => match self.cur.bump() {
                    Some(b) => out.push(b),
                    None => return Err(self.unterminated('"', ql, qc)),
                },
                Some(b) => out.push(b),
            }
        }
    }

    fn unterminated(&self, q: char, line: usize, col: usize) -> ConfigError {
        self.err(line, col, format!("unterminated {q} quote (the file ends before it is closed)"))
    }

    fn package(&mut self, line: usize, col: usize, args: Vec<Arg>) -> Result<(), ConfigError> {
        let mut args = args.into_iter();
        let name = match args.next() {
            Some(a) if !a.value.is_empty() => a,
            _ => return Err(self.err(line, col, "package without a name".into())),
        };
        if let Some(extra) = args.next() {
            return Err(self.too_many(&extra, "package"));
        }
        if !valid_package_name(&name.value) {
            return Err(self.err(
                name.line,
                name.col,
                format!(
                    "invalid package name {}: only letters, digits, '_' and '-' are allowed",
                    quote(&name.value)
                ),
            ));
        }
        if let Some(first) = &self.doc.package {
            // uci_load reads one package per file and ignores the name.
            self.warnings.push(Warning::new(
                self.file,
                line,
                format!("a second package statement (first at line {}) is ignored, as uci does", first.line),
            ));
            return Ok(());
        }
        self.doc.package = Some(Package { name: name.value, line });
        Ok(())
    }

    fn config(&mut self, line: usize, col: usize, args: Vec<Arg>) -> Result<(), ConfigError> {
        let mut args = args.into_iter();
        let ty = match args.next() {
            Some(a) if !a.value.is_empty() => a,
            _ => return Err(self.err(line, col, "config without a section type".into())),
        };
        if !valid_type(&ty.value) {
            return Err(self.err(
                ty.line,
                ty.col,
                format!(
                    "invalid section type {}: only printable ASCII without spaces is allowed",
                    quote(&ty.value)
                ),
            ));
        }
        let name = args.next();
        if let Some(extra) = args.next() {
            return Err(self.too_many(&extra, "config"));
        }
        let name = match name {
            Some(n) if !n.value.is_empty() => {
                if !valid_name(&n.value) {
                    return Err(self.err(
                        n.line,
                        n.col,
                        format!(
                            "invalid section name {}: only letters, digits and '_' are allowed",
                            quote(&n.value)
                        ),
                    ));
                }
                Some(n.value)
            }
            _ => None,
        };

        if let Some(n) = &name {
            if let Some(&i) = self.by_name.get(n) {
                let first = &self.doc.sections[i];
                if first.section_type != ty.value {
                    return Err(self.err(
                        line,
                        col,
                        format!(
                            "section '{n}' of type '{}' was already defined as type '{}' at line {}",
                            ty.value, first.section_type, first.line
                        ),
                    ));
                }
                self.warnings.push(Warning::new(
                    self.file,
                    line,
                    format!(
                        "section '{n}' is opened again (first at line {}); its options are merged, as uci does",
                        first.line
                    ),
                ));
                self.current = Some(i);
                return Ok(());
            }
        }

        let count = self.type_count.entry(ty.value.clone()).or_insert(0);
        let index = *count;
        *count += 1;
        if let Some(n) = &name {
            self.by_name.insert(n.clone(), self.doc.sections.len());
        }
        self.doc.sections.push(Section { section_type: ty.value, name, index, line, options: Vec::new() });
        self.current = Some(self.doc.sections.len() - 1);
        Ok(())
    }

    fn option(&mut self, line: usize, col: usize, args: Vec<Arg>, list: bool) -> Result<(), ConfigError> {
        let what = if list { "list" } else { "option" };
        let mut args = args.into_iter();
        let name = match args.next() {
            Some(a) if !a.value.is_empty() => a,
            _ => return Err(self.err(line, col, format!("{what} without a name"))),
        };
        if !valid_name(&name.value) {
            return Err(self.err(
                name.line,
                name.col,
                format!(
                    "invalid option name {}: only letters, digits and '_' are allowed",
                    quote(&name.value)
                ),
            ));
        }
        let value = args.next().map(|a| a.value).unwrap_or_default();
        if let Some(extra) = args.next() {
            return Err(self.err(
                extra.line,
                extra.col,
                format!(
                    "{what} '{}' has more than one value (quote a value that contains spaces)",
                    name.value
                ),
            ));
        }
        let Some(si) = self.current else {
            return Err(self.err(
                line,
                col,
                format!("{what} '{}' before the first config section", name.value),
            ));
        };
        let section = &mut self.doc.sections[si];
        let existing = section.options.iter().position(|o| o.name == name.value);

        if list {
            let item = ListItem { value, line };
            match existing {
                Some(i) => {
                    let o = &mut section.options[i];
                    match &mut o.value {
                        UciValue::List(items) => items.push(item),
                        UciValue::Single(old) => {
                            // libuci turns the single value into the first item.
                            let first = ListItem { value: std::mem::take(old), line: o.line };
                            o.value = UciValue::List(vec![first, item]);
                        }
                    }
                }
                None => section.options.push(UciOption {
                    name: name.value,
                    value: UciValue::List(vec![item]),
                    line,
                }),
            }
            return Ok(());
        }

        if value.is_empty() {
            // libuci ignores an empty value when reading a file (unlike
            // `uci set`, it does not delete an earlier value).
            if let Some(o) = existing.map(|i| &section.options[i]) {
                let first_line = o.line;
                let label = section.label();
                self.warnings.push(Warning::new(
                    self.file,
                    line,
                    format!(
                        "option '{}' in {label} is given no value, which uci ignores: \
                         the value from line {first_line} stays",
                        name.value
                    ),
                ));
            }
            return Ok(());
        }
        match existing {
            Some(i) => {
                let o = &mut section.options[i];
                let first_line = o.line;
                o.value = UciValue::Single(value);
                o.line = line;
                let label = section.label();
                self.warnings.push(Warning::new(
                    self.file,
                    line,
                    format!(
                        "option '{}' in {label} is set again (first at line {first_line}); the later value wins",
                        name.value
                    ),
                ));
            }
            None => {
                section.options.push(UciOption { name: name.value, value: UciValue::Single(value), line })
            }
        }
        Ok(())
    }

    fn too_many(&self, extra: &Arg, what: &str) -> ConfigError {
        self.err(
            extra.line,
            extra.col,
            format!("too many arguments to {what}: unexpected {}", quote(&extra.value)),
        )
    }
}

/// Option and section names: letters, digits and `_` (shell variables are
/// made of them in OpenWrt's scripts).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Section types: any printable ASCII except space.
pub fn valid_type(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b))
}

/// Package names: like option names, plus `-`.
pub fn valid_package_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests;
