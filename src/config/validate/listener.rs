//! Validation of a listener's own settings: which peers are trusted
//! proxies, and how ambiguous path spellings are treated. Part of
//! `validate.rs` (the `Check` pass), kept apart so that file stays one
//! concern per screen.

use super::super::file::PathsFile;
use super::super::spans::FieldPath;
use super::super::{
    Backslash, Cidr, DoubleEncoding, EscapedSlashes, MatrixParameters, PathRules, TrailingDotsAndSpaces,
};
use super::Check;

impl Check<'_> {
    /// `trusted_proxies = ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]`.
    pub(super) fn trusted_proxies(&mut self, path: &FieldPath, list: Option<&[String]>) -> Vec<Cidr> {
        let mut ranges: Vec<Cidr> = Vec::new();
        for (i, text) in list.unwrap_or_default().iter().enumerate() {
            let ipath = path.index(i);
            let Some(cidr) = self.ok(&ipath, Cidr::parse(text)) else { continue };
            if ranges.contains(&cidr) {
                self.error(&ipath, format!("{cidr} is listed twice"));
            } else {
                ranges.push(cidr);
            }
        }
        ranges
    }

    /// `[listeners.paths]`: each key absent keeps its (refusing) default.
    pub(super) fn path_rules(&mut self, path: &FieldPath, f: &PathsFile) -> PathRules {
        let d = PathRules::default();
        PathRules {
            escaped_slashes: self.word(
                &path.key("escaped_slashes"),
                f.escaped_slashes.as_deref(),
                EscapedSlashes::WORDS,
                d.escaped_slashes,
            ),
            backslash: self.word(&path.key("backslash"), f.backslash.as_deref(), Backslash::WORDS, d.backslash),
            matrix_parameters: self.word(
                &path.key("matrix_parameters"),
                f.matrix_parameters.as_deref(),
                MatrixParameters::WORDS,
                d.matrix_parameters,
            ),
            trailing_dots_and_spaces: self.word(
                &path.key("trailing_dots_and_spaces"),
                f.trailing_dots_and_spaces.as_deref(),
                TrailingDotsAndSpaces::WORDS,
                d.trailing_dots_and_spaces,
            ),
            double_encoding: self.word(
                &path.key("double_encoding"),
                f.double_encoding.as_deref(),
                DoubleEncoding::WORDS,
                d.double_encoding,
            ),
        }
    }

    /// One of a few words (exact, lowercase); absent or wrong: `default`
    /// (a wrong one is also an error listing the choices).
    pub(in crate::config) fn word<T: Copy>(
        &mut self,
        path: &FieldPath,
        text: Option<&str>,
        choices: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(text) = text else {
            return default;
        };
        if let Some(&(_, v)) = choices.iter().find(|(w, _)| *w == text) {
            return v;
        }
        let words: Vec<String> = choices.iter().map(|(w, _)| format!("{w:?}")).collect();
        let (last, rest) = words.split_last().expect("choices are never empty");
        self.error(path, format!("unknown value {text:?}: use {} or {last}", rest.join(", ")));
        default
    }
}
