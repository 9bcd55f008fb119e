//! What can go wrong reading a configuration, and what is only worth a
//! warning. Every message names the file and, where it can, the line.

use std::fmt;

/// A fatal problem: the configuration is refused (a running daemon keeps
/// the configuration it has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to the parser.
    pub file: String,
    /// 1-based line; `None` when the problem concerns the whole file
    /// (it cannot be read, it is too large).
    pub line: Option<usize>,
    /// 1-based column (in characters), for syntax errors.
    pub column: Option<usize>,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read.
    Io(String),
    /// The file is larger than [`super::MAX_FILE_SIZE`] (probably not a
    /// configuration file at all).
    TooLarge { limit: usize },
    /// The file is not valid UTF-8.
    NotUtf8,
    /// The text is not valid UCI syntax.
    Syntax(String),
    /// An option has a value of the wrong form.
    InvalidValue { section: String, option: String, value: String, expected: String },
    /// A required option is absent.
    Missing { section: String, option: String },
    /// Something that must be unique appears twice.
    Duplicate {
        /// What is duplicated, e.g. `interface with ifname 'mesh0'`.
        what: String,
        first_line: usize,
    },
    /// Options that are valid one by one but cannot work together.
    Conflict { section: String, message: String },
}

impl ConfigError {
    pub(crate) fn at(file: &str, line: usize, kind: ErrorKind) -> ConfigError {
        ConfigError { file: file.to_string(), line: Some(line), column: None, kind }
    }

    pub(crate) fn syntax(file: &str, line: usize, column: usize, msg: String) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line: Some(line),
            column: Some(column),
            kind: ErrorKind::Syntax(msg),
        }
    }

    pub(crate) fn whole_file(file: &str, kind: ErrorKind) -> ConfigError {
        ConfigError { file: file.to_string(), line: None, column: None, kind }
    }
}

impl fmt::Display for ConfigError {
    /// `FILE:LINE[:COL]: message`, the form editors and compilers use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(c) = self.column {
            write!(f, ":{c}")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "cannot read: {e}"),
            ErrorKind::TooLarge { limit } => {
                write!(f, "larger than {limit} bytes: not a configuration file?")
            }
            ErrorKind::NotUtf8 => f.write_str("not valid UTF-8 text"),
            ErrorKind::Syntax(m) => f.write_str(m),
            ErrorKind::InvalidValue { section, option, value, expected } => {
                write!(f, "option '{option}': expected {expected}, got {} (in {section})", quote(value))
            }
            ErrorKind::Missing { section, option } => {
                write!(f, "{section}: required option '{option}' is missing")
            }
            ErrorKind::Duplicate { what, first_line } => {
                write!(f, "duplicate {what} (first at line {first_line})")
            }
            ErrorKind::Conflict { section, message } => write!(f, "{section}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A problem that does not stop the configuration from being used, such as
/// an unknown option (perhaps meant for a newer weft).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl Warning {
    pub(crate) fn new(file: &str, line: usize, message: String) -> Warning {
        Warning { file: file.to_string(), line, message }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: warning: {}", self.file, self.line, self.message)
    }
}

/// A value shown in a message: double-quoted, with control characters
/// escaped so that a multi-line value stays on one line.
pub(crate) fn quote(v: &str) -> String {
    format!("\"{}\"", v.escape_debug())
}
