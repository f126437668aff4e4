//! Reading the few Python literals that setuptools writes into its editable finders
//! (`MAPPING = {'pkg': '/src/pkg'}`, `NAMESPACES = {'ns': ['/a']}`), without running them.
//!
//! Strings come back as bytes: a lone surrogate `\udcXX`, which is how Python's `repr` shows an
//! undecodable byte of a path (`surrogateescape`), becomes the byte `XX` again.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// A Python literal of the kinds setuptools writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Literal {
    Str(Vec<u8>),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

impl Literal {
    fn into_os_string(self) -> Option<OsString> {
        match self {
            Literal::Str(bytes) => Some(OsString::from_vec(bytes)),
            _ => None,
        }
    }

    fn into_string(self) -> Option<String> {
        match self {
            Literal::Str(bytes) => String::from_utf8(bytes).ok(),
            _ => None,
        }
    }
}

/// The dict literal assigned to the top-level name `name` (`NAME = {...}` or `NAME: T = {...}`),
/// as `str -> str`. `None` if there is no such assignment or it is not such a dict.
pub(crate) fn str_dict(source: &str, name: &str) -> Option<BTreeMap<String, OsString>> {
    let Literal::Dict(items) = assigned_literal(source, name)? else {
        return None;
    };
    items
        .into_iter()
        .map(|(k, v)| Some((k.into_string()?, v.into_os_string()?)))
        .collect()
}

/// The dict literal assigned to `name` as `str -> list[str]`.
pub(crate) fn str_list_dict(source: &str, name: &str) -> Option<BTreeMap<String, Vec<OsString>>> {
    let Literal::Dict(items) = assigned_literal(source, name)? else {
        return None;
    };
    items
        .into_iter()
        .map(|(k, v)| {
            let Literal::List(values) = v else {
                return None;
            };
            let values = values
                .into_iter()
                .map(Literal::into_os_string)
                .collect::<Option<Vec<_>>>()?;
            Some((k.into_string()?, values))
        })
        .collect()
}

fn assigned_literal(source: &str, name: &str) -> Option<Literal> {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // `NAME = ...` or `NAME: annotation = ...`, but not `NAME_OTHER = ...`.
        if !rest.starts_with([' ', '\t', ':', '=']) {
            continue;
        }
        let Some(eq) = rest.find('=') else {
            continue;
        };
        let value_start = start + name.len() + eq + 1;
        let mut parser = Parser {
            text: source.as_bytes(),
            pos: value_start,
            depth: 0,
        };
        if let Some(literal) = parser.literal() {
            return Some(literal);
        }
    }
    None
}

/// How deeply lists and dicts may nest. setuptools writes two levels; the bound keeps a hostile
/// finder file (`[[[[…`) from overflowing the stack.
const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    /// Lists and dicts open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self) -> Option<Literal> {
        self.skip_space();
        if matches!(self.peek()?, b'{' | b'[') {
            if self.depth == MAX_DEPTH {
                return None;
            }
            self.depth += 1;
            let literal = self.container();
            self.depth -= 1;
            return literal;
        }
        match self.peek()? {
            quote @ (b'\'' | b'"') => {
                self.pos += 1;
                self.string(quote).map(Literal::Str)
            }
            _ => None,
        }
    }

    /// A dict or list literal, at its opening bracket.
    fn container(&mut self) -> Option<Literal> {
        match self.peek()? {
            b'{' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(b'}') {
                        return Some(Literal::Dict(items));
                    }
                    let key = self.literal()?;
                    if !self.eat(b':') {
                        return None;
                    }
                    let value = self.literal()?;
                    items.push((key, value));
                    if !self.eat(b',') {
                        return self.eat(b'}').then_some(Literal::Dict(items));
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(b']') {
                        return Some(Literal::List(items));
                    }
                    items.push(self.literal()?);
                    if !self.eat(b',') {
                        return self.eat(b']').then_some(Literal::List(items));
                    }
                }
            }
            _ => None,
        }
    }

    fn hex(&mut self, digits: usize) -> Option<u32> {
        let end = self.pos.checked_add(digits)?;
        let digits = self.text.get(self.pos..end)?;
        // `from_str_radix` alone would also take a sign (`\x+f`), which Python refuses.
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        self.pos = end;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    fn string(&mut self, quote: u8) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let byte = self.peek()?;
            self.pos += 1;
            if byte == quote {
                return Some(out);
            }
            if byte == b'\n' {
                return None;
            }
            if byte != b'\\' {
                out.push(byte);
                continue;
            }
            let escape = self.peek()?;
            self.pos += 1;
            let code = match escape {
                b'\\' | b'\'' | b'"' => u32::from(escape),
                b'n' => 0x0a,
                b'r' => 0x0d,
                b't' => 0x09,
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'v' => 0x0b,
                b'x' => self.hex(2)?,
                b'u' => self.hex(4)?,
                b'U' => self.hex(8)?,
                b'0'..=b'7' => {
                    let mut value = u32::from(escape - b'0');
                    for _ in 0..2 {
                        match self.peek() {
                            Some(d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                self.pos += 1;
                            }
                            _ => break,
                        }
                    }
                    value
                }
                _ => return None,
            };
            push_code_point(&mut out, code)?;
        }
    }
}

fn push_code_point(out: &mut Vec<u8>, code: u32) -> Option<()> {
    if (0xdc80..=0xdcff).contains(&code) {
        // surrogateescape: an undecodable byte of a file name.
        out.push(u8::try_from(code - 0xdc00).ok()?);
        return Some(());
    }
    let ch = char::from_u32(code)?;
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn reads_both_setuptools_styles() {
        let old = "import sys\nMAPPING = {'a': '/src/a', 'b_c': \"/it's/b\"}\nNAMESPACES = {}\n";
        let new = "MAPPING: dict[str, str] = {'fmod': '/p/fmod', 'fpkg': '/p/fpkg'}\n\
                   NAMESPACES: dict[str, list[str]] = {'ns': ['/x', '/y'],}\n";
        let map = str_dict(old, "MAPPING");
        assert_eq!(
            map.map(|m| m.into_iter().collect::<Vec<_>>()),
            Some(vec![
                ("a".to_owned(), "/src/a".into()),
                ("b_c".to_owned(), "/it's/b".into())
            ])
        );
        assert_eq!(str_dict(new, "MAPPING").map(|m| m.len()), Some(2));
        assert_eq!(str_list_dict(old, "NAMESPACES").map(|m| m.len()), Some(0));
        let ns = str_list_dict(new, "NAMESPACES").unwrap_or_default();
        assert_eq!(ns.get("ns").map(Vec::len), Some(2));
        assert!(str_dict("MAPPINGS = {'a': 'b'}\n", "MAPPING").is_none());
        assert!(str_dict("MAPPING = compute()\n", "MAPPING").is_none());
    }

    #[test]
    fn escapes_and_surrogates() {
        let src = r"MAPPING = {'x': '/a\\b\tc\x41\u00e9\udcff'}";
        let map = str_dict(src, "MAPPING").unwrap_or_default();
        let value = map.get("x").map(|v| v.as_bytes().to_vec());
        assert_eq!(value, Some(b"/a\\b\tcA\xc3\xa9\xff".to_vec()));
    }

    #[test]
    fn deep_nesting_and_signed_escapes_are_refused() {
        // Found by fuzzing: unbounded nesting overflowed the stack.
        let deep = format!("MAPPING = {}\n", "[".repeat(100_000));
        assert!(str_dict(&deep, "MAPPING").is_none());
        // Python refuses `\x+f`; `from_str_radix` alone would take it.
        assert!(str_dict(r"MAPPING = {'a': '\x+f'}", "MAPPING").is_none());
        assert!(str_dict(r"MAPPING = {'a': '\u+0041'}", "MAPPING").is_none());
    }
}
