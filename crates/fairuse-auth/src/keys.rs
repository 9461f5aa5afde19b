//! Static API keys: service keys (`FAIRUSE_SERVICE_KEYS`) and named admin keys with roles
//! (`FAIRUSE_ADMIN_KEYS`).
//!
//! Keys are reduced to SHA-256 digests as soon as they are parsed, so plain keys never live in
//! memory longer than the parse, and verification compares fixed-size digests in constant time:
//! neither the content nor the length of a stored key leaks through timing, and every stored
//! entry is compared on every call (no early exit on the first match).

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::error::AuthConfigError;

pub(crate) const SERVICE_KEYS_VAR: &str = "FAIRUSE_SERVICE_KEYS";
pub(crate) const ADMIN_KEYS_VAR: &str = "FAIRUSE_ADMIN_KEYS";
const HASH_PREFIX: &str = "sha256:";
/// Keys shorter than this are accepted (tests and demos use short ones) but logged as weak.
const RECOMMENDED_KEY_LEN: usize = 16;
const MAX_ADMIN_NAME_LEN: usize = 64;

/// A SHA-256 digest of a key. Fixed size, so comparing two of them takes the same time whatever
/// the keys' lengths were.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyDigest([u8; 32]);

impl KeyDigest {
    fn of(key: &str) -> Self {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }

    fn ct_eq(&self, other: &KeyDigest) -> Choice {
        self.0[..].ct_eq(&other.0[..])
    }
}

/// Reads one key in either form: `sha256:<64 hex digits>` (already hashed) or a plain key, which
/// is hashed on the spot. Errors never include the key.
fn parse_key_material(text: &str) -> Result<KeyDigest, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the key is empty".to_owned());
    }
    // The prefix is matched case-insensitively: `SHA256:...` is surely meant as a hash, and
    // hashing it as a plain key would silently make the entry unusable.
    let is_hash_form = text.len() >= HASH_PREFIX.len()
        && text.is_char_boundary(HASH_PREFIX.len())
        && text[..HASH_PREFIX.len()].eq_ignore_ascii_case(HASH_PREFIX);
    if is_hash_form {
        let hex_part = &text[HASH_PREFIX.len()..];
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut digest)
            .map_err(|_| "a sha256: key must be followed by exactly 64 hex digits".to_owned())?;
        Ok(KeyDigest(digest))
    } else {
        if text.len() < RECOMMENDED_KEY_LEN {
            tracing::warn!(min_len = RECOMMENDED_KEY_LEN, "a configured plain key is short; use a long random key");
        }
        Ok(KeyDigest::of(text))
    }
}

/// Splits a comma-separated list into trimmed entries numbered from 1, rejecting empty entries so
/// that a stray comma is reported instead of silently ignored.
fn entries<'a>(var: &'static str, spec: &'a str) -> Result<Vec<(usize, &'a str)>, AuthConfigError> {
    if spec.trim().is_empty() {
        return Err(AuthConfigError::BadSetting { var, reason: "no keys given".to_owned() });
    }
    spec.split(',')
        .enumerate()
        .map(|(i, entry)| {
            let entry = entry.trim();
            if entry.is_empty() {
                Err(AuthConfigError::BadEntry { var, position: i + 1, reason: "the entry is empty".to_owned() })
            } else {
                Ok((i + 1, entry))
            }
        })
        .collect()
}

/// Keys that let trusted backends call the service routes (`Authorization: Bearer <key>`).
#[derive(Clone)]
pub struct ServiceKeys {
    digests: Vec<KeyDigest>,
}

impl ServiceKeys {
    /// Parses `FAIRUSE_SERVICE_KEYS`: comma-separated keys, each plain or `sha256:<hex>`.
    pub fn parse(spec: &str) -> Result<ServiceKeys, AuthConfigError> {
        let digests = entries(SERVICE_KEYS_VAR, spec)?
            .into_iter()
            .map(|(position, entry)| {
                parse_key_material(entry).map_err(|reason| AuthConfigError::BadEntry {
                    var: SERVICE_KEYS_VAR,
                    position,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServiceKeys { digests })
    }

    /// True when `presented` is one of the configured keys. Every stored digest is compared, in
    /// constant time, whatever the outcome.
    pub fn verify(&self, presented: &str) -> bool {
        let presented = KeyDigest::of(presented);
        let matched = self.digests.iter().fold(Choice::from(0), |acc, stored| acc | stored.ct_eq(&presented));
        bool::from(matched)
    }

    /// How many keys are configured (for startup logs).
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Always false for a parsed set (parsing rejects an empty list); here for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

impl fmt::Debug for ServiceKeys {
    // Even digests stay out of Debug output: a digest of a weak key can be brute-forced.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceKeys").field("count", &self.digests.len()).finish()
    }
}

/// What an admin key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only access to flagged users, cases and usage.
    Viewer,
    /// Everything a viewer can do, plus resolving events, resets, stage changes and exemptions.
    Operator,
}

impl Role {
    /// Whether this role may perform admin actions that change state.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Operator)
    }

    /// The configuration spelling of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        if text.eq_ignore_ascii_case("viewer") {
            Some(Role::Viewer)
        } else if text.eq_ignore_ascii_case("operator") {
            Some(Role::Operator)
        } else {
            None
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made an admin request: the key's name (recorded on every admin action) and its role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AdminIdentity {
    pub name: String,
    pub role: Role,
}

impl AdminIdentity {
    /// `Ok` when this identity may change state, `Forbidden` (403) otherwise.
    pub fn require_write(&self) -> Result<(), crate::AuthError> {
        if self.role.can_write() { Ok(()) } else { Err(crate::AuthError::Forbidden) }
    }
}

#[derive(Clone)]
struct AdminEntry {
    identity: AdminIdentity,
    digest: KeyDigest,
}

/// Named admin keys with roles (`X-Admin-Key: <key>`).
#[derive(Clone)]
pub struct AdminKeys {
    entries: Vec<AdminEntry>,
}

fn valid_admin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ADMIN_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
}

impl AdminKeys {
    /// Parses `FAIRUSE_ADMIN_KEYS`: comma-separated `name:role:key` entries. The key is
    /// everything after the second colon, so `sha256:<hex>` keys need no escaping.
    ///
    /// Names must be unique (the name is what audit records show) and so must keys (otherwise
    /// one key would map to two names and the audit trail would be ambiguous).
    pub fn parse(spec: &str) -> Result<AdminKeys, AuthConfigError> {
        let mut parsed: Vec<(usize, AdminEntry)> = Vec::new();
        for (position, entry) in entries(ADMIN_KEYS_VAR, spec)? {
            let bad =
                |reason: &str| AuthConfigError::BadEntry { var: ADMIN_KEYS_VAR, position, reason: reason.to_owned() };
            // Parts are never echoed: a missing colon can shift the key into the name or role.
            let mut parts = entry.splitn(3, ':');
            let (Some(name), Some(role), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("expected name:role:key"));
            };
            let name = name.trim();
            if !valid_admin_name(name) {
                return Err(bad("the name must be 1-64 characters of A-Z a-z 0-9 _ . @ -"));
            }
            let role = Role::parse(role.trim()).ok_or_else(|| bad("the role must be viewer or operator"))?;
            let digest = parse_key_material(key).map_err(|reason| bad(&reason))?;
            for (earlier, other) in &parsed {
                if other.identity.name == name {
                    return Err(bad(&format!("the name is already used by entry {earlier}")));
                }
                if other.digest == digest {
                    return Err(bad(&format!("the key is the same as entry {earlier}'s")));
                }
            }
            parsed.push((position, AdminEntry { identity: AdminIdentity { name: name.to_owned(), role }, digest }));
        }
        Ok(AdminKeys { entries: parsed.into_iter().map(|(_, entry)| entry).collect() })
    }

    /// The identity whose key is `presented`, if any. Every entry is compared in constant time and
    /// the match is selected without branching, so timing does not reveal which entry matched.
    pub fn verify(&self, presented: &str) -> Option<AdminIdentity> {
        let presented = KeyDigest::of(presented);
        let mut matched = Choice::from(0);
        let mut index = 0u64;
        for (i, entry) in self.entries.iter().enumerate() {
            let eq = entry.digest.ct_eq(&presented);
            index = u64::conditional_select(&index, &(i as u64), eq);
            matched |= eq;
        }
        if bool::from(matched) {
            usize::try_from(index).ok().and_then(|i| self.entries.get(i)).map(|entry| entry.identity.clone())
        } else {
            None
        }
    }

    /// The configured identities (names and roles only), for startup logs.
    pub fn identities(&self) -> impl Iterator<Item = &AdminIdentity> {
        self.entries.iter().map(|entry| &entry.identity)
    }
}

impl fmt::Debug for AdminKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminKeys").field("identities", &self.identities().collect::<Vec<_>>()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    #[test]
    fn service_key_in_plain_form_is_accepted() {
        let keys = ServiceKeys::parse("first-service-key-0001, second-service-key-002").expect("valid spec");
        assert_eq!(keys.len(), 2);
        assert!(keys.verify("first-service-key-0001"));
        assert!(keys.verify("second-service-key-002"));
    }

    #[test]
    fn service_key_in_sha256_form_is_accepted() {
        let spec = format!("sha256:{}", sha256_hex("hashed-service-key-01"));
        let keys = ServiceKeys::parse(&spec).expect("valid spec");
        assert!(keys.verify("hashed-service-key-01"));
        // The stored form itself is not a key.
        assert!(!keys.verify(&spec));
    }

    #[test]
    fn sha256_prefix_is_case_insensitive_and_hex_may_be_uppercase() {
        let spec = format!("SHA256:{}", sha256_hex("hashed-service-key-01").to_uppercase());
        let keys = ServiceKeys::parse(&spec).expect("valid spec");
        assert!(keys.verify("hashed-service-key-01"));
    }

    #[test]
    fn wrong_service_key_is_refused() {
        let keys = ServiceKeys::parse("right-service-key-0001").expect("valid spec");
        assert!(!keys.verify("wrong-service-key-0001"));
        assert!(!keys.verify(""));
        assert!(!keys.verify("right-service-key-000"));
        assert!(!keys.verify("right-service-key-00011"));
    }

    #[test]
    fn malformed_sha256_service_key_names_the_position_without_echoing_it() {
        let err = ServiceKeys::parse("good-key-aaaaaaaaaaaa,sha256:nothex-secretish").expect_err("bad hex");
        let message = err.to_string();
        assert!(message.contains("entry 2"), "{message}");
        assert!(message.contains("FAIRUSE_SERVICE_KEYS"), "{message}");
        assert!(!message.contains("nothex-secretish"), "{message}");
    }

    #[test]
    fn empty_service_key_entry_is_an_error() {
        let err = ServiceKeys::parse("key-one-aaaaaaaaaaaa,,key-two").expect_err("empty entry");
        assert_eq!(
            err,
            AuthConfigError::BadEntry { var: "FAIRUSE_SERVICE_KEYS", position: 2, reason: "the entry is empty".into() }
        );
        assert!(ServiceKeys::parse("  ").is_err());
    }

    #[test]
    fn service_keys_debug_shows_no_key_material() {
        let keys = ServiceKeys::parse("very-secret-service-key").expect("valid spec");
        let debug = format!("{keys:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(!debug.contains(&sha256_hex("very-secret-service-key")), "{debug}");
        assert!(debug.contains("count: 1"), "{debug}");
    }

    #[test]
    fn admin_roles_parse_and_viewer_cannot_write() {
        let spec = format!("alice:viewer:alice-key-0000001, bob.ops@example:operator:sha256:{}", sha256_hex("bob-key"));
        let keys = AdminKeys::parse(&spec).expect("valid spec");

        let alice = keys.verify("alice-key-0000001").expect("alice's key is known");
        assert_eq!(alice, AdminIdentity { name: "alice".into(), role: Role::Viewer });
        assert!(!alice.role.can_write());
        assert_eq!(alice.require_write(), Err(crate::AuthError::Forbidden));

        let bob = keys.verify("bob-key").expect("bob's key is known");
        assert_eq!(bob, AdminIdentity { name: "bob.ops@example".into(), role: Role::Operator });
        assert!(bob.role.can_write());
        assert_eq!(bob.require_write(), Ok(()));
    }

    #[test]
    fn wrong_admin_key_is_refused() {
        let keys = AdminKeys::parse("alice:operator:alice-key-0000001").expect("valid spec");
        assert_eq!(keys.verify("alice-key-0000002"), None);
        assert_eq!(keys.verify("alice"), None);
        assert_eq!(keys.verify(""), None);
    }

    #[test]
    fn admin_key_may_contain_colons() {
        let keys = AdminKeys::parse("carol:operator:part1:part2").expect("valid spec");
        assert_eq!(keys.verify("part1:part2").map(|id| id.name), Some("carol".to_owned()));
    }

    #[test]
    fn bad_admin_entries_give_errors_naming_the_position_and_never_the_key() {
        let cases: &[(&str, usize, &str)] = &[
            ("alice:viewer:k1-aaaaaaaaaaaaaa,topsecretwithoutcolons", 2, "expected name:role:key"),
            ("alice:viewer:k1-aaaaaaaaaaaaaa,bob:admin:topsecret", 2, "role must be viewer or operator"),
            ("alice:viewer:k1-aaaaaaaaaaaaaa,bob:operator:", 2, "key is empty"),
            (":viewer:topsecret", 1, "name must be"),
            ("bad name:viewer:topsecret", 1, "name must be"),
            ("alice:viewer:k1-aaaaaaaaaaaaaa,b:viewer:k2,alice:operator:topsecret", 3, "already used by entry 1"),
            ("alice:viewer:topsecret,bob:operator:topsecret", 2, "same as entry 1"),
            ("alice:viewer:k1-aaaaaaaaaaaaaa,bob:viewer:sha256:abc-topsecret", 2, "64 hex digits"),
            ("alice:viewer:k1,,bob:viewer:k2", 2, "entry is empty"),
        ];
        for (spec, position, fragment) in cases {
            let err = AdminKeys::parse(spec).expect_err(spec);
            let message = err.to_string();
            assert!(message.starts_with(&format!("FAIRUSE_ADMIN_KEYS entry {position}:")), "{spec}: {message}");
            assert!(message.contains(fragment), "{spec}: {message}");
            assert!(!message.contains("topsecret"), "{spec}: {message}");
        }
    }

    #[test]
    fn admin_keys_debug_shows_names_but_no_keys() {
        let keys = AdminKeys::parse("alice:viewer:very-secret-admin-key").expect("valid spec");
        let debug = format!("{keys:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(!debug.contains(&sha256_hex("very-secret-admin-key")), "{debug}");
    }

    #[test]
    fn role_serializes_lowercase() {
        let json = serde_json::to_string(&AdminIdentity { name: "a".into(), role: Role::Operator }).expect("serialize");
        assert_eq!(json, r#"{"name":"a","role":"operator"}"#);
    }
}
