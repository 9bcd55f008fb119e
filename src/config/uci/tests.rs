use super::*;
use crate::config::error::ErrorKind;
use proptest::prelude::*;

fn doc(text: &str) -> Document {
    match parse(text, "t") {
        Ok((d, _)) => d,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn warnings(text: &str) -> Vec<Warning> {
    parse(text, "t").unwrap().1
}

fn err(text: &str) -> ConfigError {
    match parse(text, "t") {
        Ok(d) => panic!("{text:?} parsed: {d:?}"),
        Err(e) => e,
    }
}

/// The single value of `option` in the first section.
fn value(text: &str, option: &str) -> String {
    let d = doc(text);
    match &d.sections[0].option(option).expect("option set").value {
        UciValue::Single(v) => v.clone(),
        UciValue::List(l) => panic!("a list: {l:?}"),
    }
}

fn list(d: &Document, section: usize, option: &str) -> Vec<String> {
    match &d.sections[section].option(option).expect("option set").value {
        UciValue::List(l) => l.iter().map(|i| i.value.clone()).collect(),
        UciValue::Single(v) => panic!("single: {v:?}"),
    }
}

fn syntax_at(e: &ConfigError) -> (usize, usize, &str) {
    match &e.kind {
        ErrorKind::Syntax(m) => (e.line.unwrap(), e.column.unwrap(), m.as_str()),
        k => panic!("not a syntax error: {k:?}"),
    }
}

#[test]
fn sections_options_and_lists_in_order() {
    let d = doc("package weft\n\
         \n\
         config weft 'main'\n\
         \toption protocol 119\n\
         \tlist ca_public_key k1\n\
         \tlist ca_public_key k2\n\
         \n\
         config interface 'mesh'\n\
         \toption ifname mesh0\n\
         config announce\n\
         \toption prefix 10.0.0.0/8\n\
         config announce\n\
         \toption prefix 10.1.0.0/16\n");
    assert_eq!(d.package, Some(Package { name: "weft".into(), line: 1 }));
    let types: Vec<&str> = d.sections.iter().map(|s| s.section_type.as_str()).collect();
    assert_eq!(types, ["weft", "interface", "announce", "announce"]);
    assert_eq!(d.sections[0].name.as_deref(), Some("main"));
    assert_eq!(d.sections[0].line, 3);
    assert_eq!(d.sections[0].options[0].line, 4);
    assert_eq!(list(&d, 0, "ca_public_key"), ["k1", "k2"]);
    match &d.sections[0].option("ca_public_key").unwrap().value {
        UciValue::List(items) => {
            assert_eq!(items[0].line, 5);
            assert_eq!(items[1].line, 6);
        }
        v => panic!("{v:?}"),
    }
    // Anonymous sections get their position among sections of their type.
    assert_eq!(d.sections[2].name, None);
    assert_eq!(d.sections[2].index, 0);
    assert_eq!(d.sections[3].index, 1);
    assert_eq!(d.sections[3].label(), "announce @announce[1]");
    assert_eq!(d.sections[1].label(), "interface 'mesh'");
    assert_eq!(d.sections_of("announce").count(), 2);
}

#[test]
fn index_counts_named_and_anonymous_sections_per_type() {
    let d = doc("config a 'x'\nconfig b\nconfig a\nconfig a 'y'\n");
    let idx: Vec<usize> = d.sections.iter().map(|s| s.index).collect();
    assert_eq!(idx, [0, 0, 1, 2]);
}

#[test]
fn keywords_may_be_abbreviated() {
    let d = doc("p weft\nc interface 'x'\no ifname eth0\nl addr a\nl addr b\n");
    assert_eq!(d.package.as_ref().unwrap().name, "weft");
    assert_eq!(d.sections[0].section_type, "interface");
    assert_eq!(list(&d, 0, "addr"), ["a", "b"]);
}

#[test]
fn quoting_forms() {
    let v = |s: &str| value(&format!("config x\noption o {s}\n"), "o");
    assert_eq!(v("plain"), "plain");
    assert_eq!(v("'single quoted'"), "single quoted");
    assert_eq!(v("\"double quoted\""), "double quoted");
    // Adjacent parts are one value.
    assert_eq!(v("'a b'\"c d\"e"), "a bc de");
    assert_eq!(v("pre'mid'post"), "premidpost");
    // uci export's way of putting a ' inside single quotes.
    assert_eq!(v(r#"'it'\''s'"#), "it's");
    // Double quotes: a backslash takes the next character literally;
    // libuci does not decode \n into a newline.
    assert_eq!(v(r#""say \"hi\"""#), "say \"hi\"");
    assert_eq!(v(r#""back\\slash""#), "back\\slash");
    assert_eq!(v(r#""a\nb""#), "anb");
    assert_eq!(v(r#""it's""#), "it's");
    // Single quotes: a backslash is an ordinary character.
    assert_eq!(v(r"'C:\dir\'"), "C:\\dir\\");
    assert_eq!(v("'say \"hi\"'"), "say \"hi\"");
    // Unquoted: a backslash escapes too.
    assert_eq!(v(r"a\ b"), "a b");
    assert_eq!(v(r"a\#b"), "a#b");
    assert_eq!(v(r"a\;b"), "a;b");
    assert_eq!(v(r"\'x\'"), "'x'");
    // Quotes protect comment and separator characters.
    assert_eq!(v("'a # b ; c'"), "a # b ; c");
    assert_eq!(v("\"#;\""), "#;");
    // UTF-8 passes through.
    assert_eq!(v("'größe €'"), "größe €");
    assert_eq!(v("größe"), "größe");
}

#[test]
fn quoted_names_and_types() {
    let d = doc("config 'interface' \"mesh\"\n\toption 'ifname' \"mesh0\"\n");
    assert_eq!(d.sections[0].section_type, "interface");
    assert_eq!(d.sections[0].name.as_deref(), Some("mesh"));
    assert!(d.sections[0].option("ifname").is_some());
}

#[test]
fn empty_section_name_is_anonymous() {
    let d = doc("config announce ''\n");
    assert_eq!(d.sections[0].name, None);
}

#[test]
fn multi_line_quoted_values_keep_the_newline() {
    let d = doc("config x\n\toption a 'one\ntwo'\n\toption b \"three\n four\"\n\toption c after\n");
    let s = &d.sections[0];
    assert_eq!(s.option("a").unwrap().value, UciValue::Single("one\ntwo".into()));
    assert_eq!(s.option("b").unwrap().value, UciValue::Single("three\n four".into()));
    // Line numbers keep counting through multi-line values.
    assert_eq!(s.option("a").unwrap().line, 2);
    assert_eq!(s.option("b").unwrap().line, 4);
    assert_eq!(s.option("c").unwrap().line, 6);
}

#[test]
fn backslash_at_line_end_joins_lines() {
    let d = doc(
        "config x\n\toption a abc\\\ndef\n\toption b \"ghi\\\njkl\"\n\toption c \\\nmno\n\toption d end\n",
    );
    let s = &d.sections[0];
    assert_eq!(s.option("a").unwrap().value, UciValue::Single("abcdef".into()));
    assert_eq!(s.option("b").unwrap().value, UciValue::Single("ghijkl".into()));
    assert_eq!(s.option("c").unwrap().value, UciValue::Single("mno".into()));
    assert_eq!(s.option("d").unwrap().line, 8);
    // libuci reads an empty argument when the joined line starts blank.
    let e = err("config x\noption c \\\n   mno\n");
    assert!(syntax_at(&e).2.contains("more than one value"), "{e}");
    let e = err("config x\noption \\\n c mno\n");
    assert!(syntax_at(&e).2.contains("option without a name"), "{e}");
    // A backslash at the very end of the text is dropped.
    assert_eq!(value("config x\noption a b\\", "a"), "b");
}

#[test]
fn comments() {
    let d = doc("# leading comment\n\
         config x # after the header\n\
         \t# indented comment\n\
         \toption a 1 # trailing\n\
         \toption b 2# glued to the value\n\
         \toption c '3' #\n\
         #config y\n");
    assert_eq!(d.sections.len(), 1);
    let s = &d.sections[0];
    assert_eq!(s.option("a").unwrap().value, UciValue::Single("1".into()));
    assert_eq!(s.option("b").unwrap().value, UciValue::Single("2".into()));
    assert_eq!(s.option("c").unwrap().value, UciValue::Single("3".into()));
    // A comment where the value should be: no value, so no option.
    assert!(doc("config x\noption a #1\n").sections[0].option("a").is_none());
}

#[test]
fn semicolons_separate_statements() {
    // Forms libuci reads the same way (checked against libuci).
    let d = doc("config x 'n' ;option a 1 ;option b '2';list c 3 ; list c a\\ b;option e f\nconfig y 'm'\n");
    assert_eq!(d.sections.len(), 2);
    let s = &d.sections[0];
    assert_eq!(s.options.len(), 4);
    assert_eq!(s.option("b").unwrap().value, UciValue::Single("2".into()));
    assert_eq!(list(&d, 0, "c"), ["3", "a b"]);
    assert_eq!(s.option("e").unwrap().value, UciValue::Single("f".into()));
    assert!(s.options.iter().all(|o| o.line == 1));
}

#[test]
fn semicolon_glued_to_a_plain_word_is_refused() {
    // libuci would keep `a 1` and silently drop `option b 2`.
    let e = err("config x\noption a 1;option b 2\n");
    let (line, col, msg) = syntax_at(&e);
    assert_eq!((line, col), (2, 11));
    assert!(msg.contains("';' right after \"1\""), "{msg}");
    assert!(msg.contains("put a space before ';'"), "{msg}");
    let e = err("config x;y\n");
    assert_eq!(syntax_at(&e).0, 1);
    // Nothing but blanks, `;` or a comment after it: nothing is lost.
    let d = doc("config x;;\noption a 1; ;\noption b 2;  # note\n");
    assert_eq!(d.sections[0].options.len(), 2);
}

#[test]
fn semicolon_without_a_statement_is_refused() {
    // libuci: "invalid command".
    for (text, line, col) in [
        ("config x\n;\n", 2, 1),
        ("config x\n  ; option a 1\n", 2, 3),
        ("config x\noption a 1 ; ; option b 2\n", 2, 14),
    ] {
        let e = err(text);
        let (l, c, m) = syntax_at(&e);
        assert_eq!((l, c), (line, col), "{text:?}");
        assert!(m.contains("no statement before it"), "{m}");
    }
}

#[test]
fn separating_semicolon_at_the_end_of_a_line_is_refused() {
    // libuci reads the line end after it as an empty, invalid command...
    for text in ["config x\noption a 1 ;\n", "config x\noption a '1';  \r\n"] {
        let e = err(text);
        let (l, c, m) = syntax_at(&e);
        assert_eq!(l, 2, "{text:?}");
        assert!(m.contains("';' at the end of a line"), "{m}");
        assert!(c >= 12, "{text:?}: column {c}");
    }
    // ...but not a comment or the end of the file.
    assert_eq!(doc("config x\noption a 1 ; # c\noption b 2 ;").sections[0].options.len(), 2);
}

#[test]
fn semicolon_in_place_of_an_optional_argument() {
    // libuci takes the `;` as the empty name/value and the rest of the line
    // as more arguments: "too many arguments".
    for text in ["config a ; option x 1\n", "config a\noption x ; option y 2\n"] {
        let e = err(text);
        assert!(syntax_at(&e).2.contains("where uci expects a name or value"), "{text:?}: {e}");
    }
    // With nothing after it, libuci accepts it (and so do we).
    let d = doc("config a ;\noption x ; # c\noption y 1 ; option z 2\n");
    assert_eq!(d.sections[0].name, None);
    assert_eq!(d.sections[0].options.len(), 2);
    // `package NAME` has no optional argument: `;` separates as usual.
    assert_eq!(doc("package weft ; config a 'b'\n").sections.len(), 1);
}

#[test]
fn a_second_package_statement_is_ignored_with_a_warning() {
    let (d, w) = parse("package weft\nconfig a\npackage other\n", "t").unwrap();
    assert_eq!(d.package.unwrap().name, "weft");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].line, 3);
}

#[test]
fn trailing_line_continuation_before_a_blank_line() {
    let d = doc("config a\noption x 1 \\\n\noption y \\\n   # c\npackage weft \\\n");
    assert_eq!(d.sections[0].options.len(), 1);
}

#[test]
fn a_lone_line_continuation_is_refused() {
    // libuci reads `\` as a command word: "invalid command".
    let e = err("config x\n\\\noption a 1\n");
    let (l, c, m) = syntax_at(&e);
    assert_eq!((l, c), (2, 1));
    assert!(m.contains("unknown statement \"\\\\\""), "{m}");
}

#[test]
fn blank_lines_tabs_crlf() {
    let d = doc("\r\n\t \n config\tx\t'n'  \r\n\t\toption\t a\t 'v' \r\n\n");
    assert_eq!(d.sections[0].name.as_deref(), Some("n"));
    assert_eq!(d.sections[0].option("a").unwrap().value, UciValue::Single("v".into()));
    assert_eq!(d.sections[0].line, 3);
    assert_eq!(doc("").sections.len(), 0);
    assert_eq!(doc("\n\n# only comments\n").sections.len(), 0);
}

#[test]
fn repeated_option_replaces_and_warns() {
    let text = "config x\noption a 1\noption b 2\noption a 3\n";
    let d = doc(text);
    let s = &d.sections[0];
    // Keeps its first position, takes the later value and line.
    assert_eq!(s.options[0].name, "a");
    assert_eq!(s.options[0].value, UciValue::Single("3".into()));
    assert_eq!(s.options[0].line, 4);
    let w = warnings(text);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].line, 4);
    assert!(w[0].message.contains("first at line 2"), "{}", w[0].message);
}

#[test]
fn empty_option_value_is_ignored() {
    // As libuci reads a file: no option is created, none is deleted.
    let text = "config x\noption a 1\noption a ''\noption b\noption c ''\nlist d 1\noption d\n";
    let d = doc(text);
    let s = &d.sections[0];
    assert_eq!(s.options.len(), 2);
    assert_eq!(s.option("a").unwrap().value, UciValue::Single("1".into()));
    assert_eq!(list(&d, 0, "d"), ["1"]);
    let w = warnings(text);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!((w[0].line, w[1].line), (3, 7));
    assert!(w[0].message.contains("the value from line 2 stays"), "{w:?}");
}

#[test]
fn list_after_option_extends_it_option_after_list_replaces_it() {
    let d = doc("config x\noption a 1\nlist a 2\nlist b 1\nlist b 2\noption b 3\n");
    assert_eq!(list(&d, 0, "a"), ["1", "2"]);
    assert_eq!(d.sections[0].option("b").unwrap().value, UciValue::Single("3".into()));
    // An empty list item is kept (libuci adds it).
    assert_eq!(list(&doc("config x\nlist a ''\n"), 0, "a"), [""]);
}

#[test]
fn named_section_opened_twice_is_merged() {
    let text = "config iface 'a'\noption x 1\nconfig iface 'b'\nconfig iface 'a'\noption y 2\n";
    let d = doc(text);
    assert_eq!(d.sections.len(), 2);
    assert_eq!(d.sections[0].options.len(), 2);
    let w = warnings(text);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].line, 4);
    let e = err("config iface 'a'\nconfig other 'a'\n");
    let (line, _, msg) = syntax_at(&e);
    assert_eq!(line, 2);
    assert!(msg.contains("already defined as type 'iface' at line 1"), "{msg}");
}

#[test]
fn syntax_errors_name_line_and_column() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("config x\n  bogus a b\n", 2, 3, "unknown statement \"bogus\""),
        ("config x\n\"option\" a b\n", 2, 1, "unknown statement"),
        ("config x\noptions a b\n", 2, 1, "unknown statement \"options\""),
        ("option a b\n", 1, 1, "before the first config section"),
        ("config x\noption a b c\n", 2, 12, "more than one value"),
        ("config x\nlist a b c\n", 2, 10, "more than one value"),
        ("config x y z\n", 1, 12, "too many arguments to config"),
        ("config\n", 1, 1, "config without a section type"),
        ("config ''\n", 1, 1, "config without a section type"),
        ("config x\noption\n", 2, 1, "option without a name"),
        ("config x\nlist '' v\n", 2, 1, "list without a name"),
        ("config x\noption a-b 1\n", 2, 8, "invalid option name \"a-b\""),
        ("config x\noption 'a b' 1\n", 2, 8, "invalid option name"),
        ("config x 'my-name'\n", 1, 10, "invalid section name \"my-name\""),
        ("config x 'é'\n", 1, 10, "invalid section name"),
        ("config 'a b'\n", 1, 8, "invalid section type"),
        ("package\n", 1, 1, "package without a name"),
        ("package a b\n", 1, 11, "too many arguments to package"),
        ("package 'a.b'\n", 1, 9, "invalid package name"),
        ("config x\noption a 'open\n\n", 2, 10, "unterminated ' quote"),
        ("config x\noption a \"open\n", 2, 10, "unterminated \" quote"),
        ("config x\noption a \"open\\", 2, 10, "unterminated \" quote"),
        ("config x\noption a b\u{0}c\n", 2, 11, "control character U+0000"),
        ("config x\n\toption a 'é\u{1b}'\n", 2, 13, "control character U+001B"),
        ("# \u{7f}\n", 1, 3, "control character U+007F"),
    ];
    for (text, line, col, msg) in cases {
        let e = err(text);
        let (l, c, m) = syntax_at(&e);
        assert_eq!((l, c), (*line, *col), "{text:?}: {e}");
        assert!(m.contains(msg), "{text:?}: {m:?} lacks {msg:?}");
        assert!(e.to_string().starts_with(&format!("t:{line}:{col}: ")), "{e}");
    }
}

#[test]
fn column_counts_characters_not_bytes() {
    let e = err("config x\noption a 'ééé' b\n");
    assert_eq!(syntax_at(&e).1, 16);
}

#[test]
fn abbreviations_do_not_go_further() {
    for kw in ["con", "opt", "li", "pack", "configs"] {
        let e = err(&format!("config x\n{kw} a b\n"));
        assert!(syntax_at(&e).2.contains("unknown statement"), "{kw}");
    }
}

// --- property tests ---------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Garbage in: an error or a document, never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse(&text, "fuzz");
    }

    /// Text made of UCI's own syntax characters hits the tricky paths far
    /// more often than uniform random text.
    #[test]
    fn syntax_soup_never_panics(parts in prop::collection::vec(prop::sample::select(vec![
        "config", "option", "list", "package", "c", "o", "l", "p", " ", "\t", "\n", "\r\n",
        "'", "\"", "\\", "\\\n", "#", ";", "x", "a_b", "é", "-", "''", "\"\"", "\u{0}",
    ]), 0..60)) {
        let text: String = parts.concat();
        if let Err(e) = parse(&text, "fuzz") {
            // Every error points into the text.
            let lines = text.split('\n').count();
            prop_assert!(e.line.unwrap() >= 1 && e.line.unwrap() <= lines, "{e} for {text:?}");
        }
    }

    /// Any document, written with randomly chosen quoting and layout, reads
    /// back as the same sections, options, values and line numbers.
    #[test]
    fn rendered_documents_read_back(spec in doc_spec(), styles in prop::collection::vec(0u8..=255, 256)) {
        let (text, expected) = render(&spec, &styles);
        let (d, _) = parse(&text, "rt").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(d.sections.len(), expected.len(), "{}", text);
        for (got, want) in d.sections.iter().zip(&expected) {
            prop_assert_eq!(&got.section_type, &want.section_type, "{}", text);
            prop_assert_eq!(&got.name, &want.name, "{}", text);
            prop_assert_eq!(got.line, want.line, "{}", text);
            prop_assert_eq!(&got.options, &want.options, "{}", text);
        }
    }
}

/// A section to render: type, name, options (name, is_list, values).
type SectionSpec = (String, Option<String>, Vec<(bool, Vec<String>)>);

fn value_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a', 'Z', '0', ' ', '\t', '\n', '\r', '\'', '"', '\\', '#', ';', 'é', '€', '/', ':', '=', '.',
            '-',
        ]),
        0..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn doc_spec() -> impl Strategy<Value = Vec<SectionSpec>> {
    let option = (any::<bool>(), prop::collection::vec(value_strategy(), 1..4));
    let section = (
        prop::sample::select(vec!["weft", "interface", "announce", "peer", "x-y.z"]),
        any::<bool>(),
        prop::collection::vec(option, 0..5),
    );
    prop::collection::vec(section, 0..6).prop_map(|secs| {
        secs.into_iter()
            .enumerate()
            .map(|(i, (ty, named, opts))| {
                // Unique names and option names: merging is tested elsewhere.
                let name = named.then(|| format!("s{i}"));
                (ty.to_string(), name, opts)
            })
            .collect()
    })
}

/// Renders one value, choosing per part between single quotes, double
/// quotes and backslash-escaped unquoted text.
fn render_value(v: &str, style: u8) -> String {
    fn single(s: &str) -> String {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
    fn double(s: &str) -> String {
        let mut o = String::from("\"");
        for c in s.chars() {
            if c == '"' || c == '\\' {
                o.push('\\');
            }
            o.push(c);
        }
        o.push('"');
        o
    }
    fn unquoted(s: &str) -> Option<String> {
        // A line end cannot be escaped outside quotes (it joins lines).
        if s.is_empty() || s.contains(['\n', '\r']) {
            return None;
        }
        let mut o = String::new();
        for c in s.chars() {
            if matches!(c, ' ' | '\t' | '\'' | '"' | '\\' | '#' | ';') {
                o.push('\\');
            }
            o.push(c);
        }
        Some(o)
    }
    let one = |s: &str, st: u8| match st % 3 {
        0 => single(s),
        1 => double(s),
        _ => unquoted(s).unwrap_or_else(|| single(s)),
    };
    if style & 0x80 != 0 && v.chars().count() >= 2 {
        // Two adjacent parts in (possibly) different styles.
        let mid = v.char_indices().nth(1).map(|(i, _)| i).unwrap_or(0);
        format!("{}{}", one(&v[..mid], style), one(&v[mid..], style >> 2))
    } else {
        one(v, style)
    }
}

fn render(spec: &[SectionSpec], styles: &[u8]) -> (String, Vec<Section>) {
    let mut style = styles.iter().copied().cycle();
    let mut text = String::new();
    let mut line = 1;
    let mut expected = Vec::new();
    // Ends a statement: a newline, sometimes with a comment, or a `;`.
    let end = |text: &mut String, line: &mut usize, s: u8| match s % 4 {
        0 => text.push_str(" ; "),
        1 => {
            text.push_str(" # note 'x\" \\\n");
            *line += 1;
        }
        _ => {
            text.push('\n');
            *line += 1;
        }
    };
    for (ty, name, opts) in spec {
        let s = style.next().unwrap_or(0);
        let kw = if s & 1 == 0 { "config" } else { "c" };
        let sec_line = line;
        text.push_str(kw);
        text.push_str(if s & 2 == 0 { " " } else { "\t " });
        text.push_str(&render_value(ty, s));
        if let Some(n) = name {
            text.push(' ');
            text.push_str(&render_value(n, s >> 3));
        }
        // After `config TYPE` with no name, libuci would take a `;` as the
        // name and what follows as extra arguments: end the line instead.
        end(&mut text, &mut line, if name.is_some() { s >> 4 } else { 2 });
        let mut options = Vec::new();
        for (j, (is_list, values)) in opts.iter().enumerate() {
            let oname = format!("o{j}");
            if *is_list {
                let mut items = Vec::new();
                for v in values {
                    let s = style.next().unwrap_or(0);
                    text.push_str(if s & 1 == 0 { "\tlist " } else { "  l " });
                    text.push_str(&oname);
                    text.push(' ');
                    let item_line = line;
                    text.push_str(&render_value(v, s >> 1));
                    line += v.matches('\n').count();
                    items.push(ListItem { value: v.clone(), line: item_line });
                    end(&mut text, &mut line, s >> 5);
                }
                let first = items[0].line;
                options.push(UciOption { name: oname, value: UciValue::List(items), line: first });
            } else {
                // A single option: empty would mean "delete", so not empty.
                let v = if values[0].is_empty() { "v" } else { &values[0] };
                let s = style.next().unwrap_or(0);
                text.push_str(if s & 1 == 0 { "\toption " } else { "o " });
                text.push_str(&oname);
                text.push(' ');
                let opt_line = line;
                text.push_str(&render_value(v, s >> 1));
                line += v.matches('\n').count();
                options.push(UciOption {
                    name: oname,
                    value: UciValue::Single(v.to_string()),
                    line: opt_line,
                });
                end(&mut text, &mut line, s >> 5);
            }
        }
        expected.push(Section {
            section_type: ty.clone(),
            name: name.clone(),
            index: 0,
            line: sec_line,
            options,
        });
    }
    (text, expected)
}
