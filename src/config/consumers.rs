//! `[[consumers]]`: who may call the API routes, with their metadata and
//! their API keys, stored as SHA-256 digests (`shardgate key hash` prints
//! one) in the config or in a keys file read at each (re)load. The
//! proxy never holds a key itself: a request's key is hashed and its
//! digest looked up.
//!
//! Where it sits: built by validation (`file -> validate -> Config`) into
//! [`Consumers`], read by the API key stage (`policy/api_key.rs`).
//!
//! Lookup: the table is sorted by digest; the first 8 bytes of a digest
//! find the candidates, and each candidate's full digest is compared in
//! constant time (`subtle`). What the branching reveals is a prefix of
//! the digest of the presented key, not of any stored key.

use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::spans::FieldPath;
use super::validate::Check;

/// A key digest is written `sha256:` and 64 hex digits.
pub const DIGEST_PREFIX: &str = "sha256:";
/// Longest key a request may present (longer is refused as unknown
/// without hashing: no legitimate key is this long).
pub const MAX_API_KEY_BYTES: usize = 512;

/// `[[consumers]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerFile {
    pub name: String,
    pub plan: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Digests (`sha256:HEX`).
    pub api_keys: Option<Vec<String>>,
    /// A file of digests, one per line (`#` comments, blank lines).
    pub api_keys_file: Option<String>,
}

/// The SHA-256 digest of an API key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn of(key: &[u8]) -> KeyDigest {
        KeyDigest(Sha256::digest(key).into())
    }

    /// `sha256:` and 64 hex digits (either case).
    pub fn parse(text: &str) -> Result<KeyDigest, String> {
        // Never echo the text: it may be a key written by mistake.
        let hex = text.strip_prefix(DIGEST_PREFIX).ok_or(
            "an API key is stored as its digest: \"sha256:\" and 64 hex digits (`shardgate key hash` prints it)",
        )?;
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(format!("a sha256 digest has 64 hex digits, this one {}", bytes.len()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let digit = |b: u8| (b as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
                _ => return Err("a sha256 digest is 64 hex digits (0-9, a-f)".to_owned()),
            }
        }
        Ok(KeyDigest(out))
    }

    fn prefix(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

impl fmt::Display for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DIGEST_PREFIX)?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One consumer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: String,
    pub plan: Option<String>,
    pub tags: Vec<String>,
    /// How many keys it has (for `shardgate check`).
    pub keys: usize,
}

/// Every consumer, and every key digest with its consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumers {
    pub list: Vec<Consumer>,
    /// Sorted by digest; the index is into `list`.
    keys: Vec<(KeyDigest, u32)>,
}

impl Consumers {
    /// The consumer whose key `key` is.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        if key.len() > MAX_API_KEY_BYTES {
            return None;
        }
        let digest = KeyDigest::of(key);
        let prefix = digest.prefix();
        let start = self.keys.partition_point(|(d, _)| d.prefix() < prefix);
        let mut found = None;
        for (d, consumer) in self.keys[start..].iter().take_while(|(d, _)| d.prefix() == prefix) {
            if bool::from(d.0.ct_eq(&digest.0)) {
                found = Some(*consumer as usize);
            }
        }
        found
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl Check<'_> {
    pub(super) fn consumers(&mut self, files: &[ConsumerFile]) -> Consumers {
        let mut names = std::collections::HashMap::new();
        let mut list = Vec::with_capacity(files.len());
        // (digest, consumer, where it was written)
        let mut keys: Vec<(KeyDigest, u32, String)> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let path = FieldPath::root("consumers").index(i);
            self.name("consumers", i, &f.name, &mut names);
            let before = keys.len();
            for (j, text) in f.api_keys.as_deref().unwrap_or_default().iter().enumerate() {
                let kpath = path.key("api_keys").index(j);
                if let Some(d) = self.ok(&kpath, KeyDigest::parse(text.trim())) {
                    keys.push((d, i as u32, kpath.to_string()));
                }
            }
            if let Some(file) = &f.api_keys_file {
                let fpath = path.key("api_keys_file");
                let file = self.base_dir.join(file);
                match std::fs::read_to_string(&file) {
                    Err(e) => self.error(&fpath, format!("cannot read {}: {e}", file.display())),
                    Ok(text) => {
                        for (n, line) in text.lines().enumerate() {
                            let line = line.trim();
                            if line.is_empty() || line.starts_with('#') {
                                continue;
                            }
                            match KeyDigest::parse(line) {
                                Ok(d) => keys.push((d, i as u32, format!("{} line {}", file.display(), n + 1))),
                                Err(e) => self.error(&fpath, format!("{} line {}: {e}", file.display(), n + 1)),
                            }
                        }
                    }
                }
            }
            if f.api_keys.is_none() && f.api_keys_file.is_none() {
                self.error(&path, "a consumer needs api_keys or api_keys_file");
            }
            let mut tags = Vec::new();
            for (j, tag) in f.tags.as_deref().unwrap_or_default().iter().enumerate() {
                if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',') {
                    self.error(&path.key("tags").index(j), format!("tag {tag:?} must be a word (no spaces or commas)"));
                } else if !tags.contains(tag) {
                    tags.push(tag.clone());
                }
            }
            list.push(Consumer { name: f.name.clone(), plan: f.plan.clone(), tags, keys: keys.len() - before });
        }
        keys.sort_by_key(|k| k.0);
        for pair in keys.windows(2) {
            if pair[0].0 == pair[1].0 {
                // A key of two consumers would name either one upstream.
                let (a, b) = (&list[pair[0].1 as usize].name, &list[pair[1].1 as usize].name);
                let msg = format!(
                    "the same key digest is at {} (consumer {a:?}) and {} (consumer {b:?})",
                    pair[0].2, pair[1].2
                );
                let path = FieldPath::root("consumers").index(pair[1].1 as usize);
                self.error(&path, msg);
            }
        }
        Consumers { list, keys: keys.into_iter().map(|(d, c, _)| (d, c)).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The SHA-256 test vector of FIPS 180-2 ("abc").
    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digests_are_sha256_and_round_trip() {
        assert_eq!(KeyDigest::of(b"abc").to_string(), ABC);
        assert_eq!(KeyDigest::parse(ABC).unwrap(), KeyDigest::of(b"abc"));
        assert_eq!(KeyDigest::parse(&ABC.to_uppercase().replace("SHA256:", "sha256:")).unwrap(), KeyDigest::of(b"abc"));
    }

    #[test]
    fn malformed_digests_are_refused() {
        const CASES: &[(&str, &str)] = &[
            ("abc", "stored as its digest"),
            ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "stored as its digest"),
            ("sha256:ba78", "64 hex digits, this one 4"),
            ("sha256:zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "hex digits (0-9"),
        ];
        for &(text, want) in CASES {
            let e = KeyDigest::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains(text) || text.len() < 8, "the message does not echo what may be a key: {e}");
        }
    }

    fn table(keys: &[(&[u8], u32)]) -> Consumers {
        let mut keys: Vec<(KeyDigest, u32)> = keys.iter().map(|&(k, c)| (KeyDigest::of(k), c)).collect();
        keys.sort();
        let list = (0..3).map(|i| Consumer { name: format!("c{i}"), plan: None, tags: Vec::new(), keys: 1 }).collect();
        Consumers { list, keys }
    }

    #[test]
    fn find_names_the_consumer_of_a_key() {
        let t = table(&[(b"key-zero", 0), (b"key-one", 1), (b"key-one-b", 1), (b"key-two", 2)]);
        assert_eq!(t.find(b"key-zero"), Some(0));
        assert_eq!(t.find(b"key-one"), Some(1));
        assert_eq!(t.find(b"key-one-b"), Some(1));
        assert_eq!(t.find(b"key-two"), Some(2));
        assert_eq!(t.find(b"key-three"), None);
        assert_eq!(t.find(b""), None);
        assert_eq!(t.find(b"key-on"), None, "a prefix of a key is not the key");
        let long = vec![b'k'; MAX_API_KEY_BYTES + 1];
        assert_eq!(t.find(&long), None);
        assert_eq!(Consumers::default().find(b"key-zero"), None);
    }

    #[test]
    fn candidates_sharing_a_prefix_are_all_compared() {
        // Two digests forced to share their first 8 bytes: only the full
        // (constant-time) comparison tells them apart.
        let a = KeyDigest::of(b"a");
        let mut b = KeyDigest::of(b"b");
        b.0[..8].copy_from_slice(&a.0[..8]);
        let mut keys = vec![(a, 0), (b, 1)];
        keys.sort();
        let t = Consumers { list: table(&[]).list, keys };
        assert_eq!(t.find(b"a"), Some(0));
        assert_eq!(t.find(b"b"), None, "b's real digest is not in the table");
    }
}
