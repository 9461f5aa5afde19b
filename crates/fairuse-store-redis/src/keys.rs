//! Key names. Every key of one user carries the hash tag `{<prefix>:<uid>}`, so a Redis Cluster
//! keeps all of them in one slot and a script may touch any of them; the version segment lets a
//! new layout live beside the old one: the meter moved from nine keys (`fu1`) to one hash
//! (`fu2`, see `lua/meter.lua`), the other keys kept their `fu1` layout and names.
//!
//! The prefix may not contain `:`, `{` or `}`: with it, `{<prefix>:<uid>}` is unambiguous (the
//! first `:` ends the prefix) and no uid can close the hash tag early (uids cannot contain braces).

use fairuse_domain::error::StoreError;
use fairuse_domain::ids::{Lane, Uid};

/// The layout version of every key but the meter's, part of its name.
pub const LAYOUT_VERSION: &str = "fu1";

/// The layout version of the meter hash, part of its name.
pub const METER_LAYOUT_VERSION: &str = "fu2";

/// Builds every key name the store uses, for one key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    prefix: String,
}

impl KeyLayout {
    /// A layout for `prefix`: 1-64 characters of `[A-Za-z0-9_.-]`.
    pub fn new(prefix: &str) -> Result<KeyLayout, StoreError> {
        if prefix.is_empty() || prefix.len() > 64 {
            return Err(StoreError::Invalid(format!("redis key prefix must be 1-64 characters, got {}", prefix.len())));
        }
        if let Some(bad) = prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
            return Err(StoreError::Invalid(format!(
                "redis key prefix may only contain A-Z a-z 0-9 _ . -, found {bad:?} in {prefix:?}"
            )));
        }
        Ok(KeyLayout { prefix: prefix.to_owned() })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{<prefix>:<uid>}`: the hash tag every key of this user starts with.
    pub fn user_tag(&self, uid: &Uid) -> String {
        format!("{{{}:{}}}", self.prefix, uid.as_str())
    }

    fn user_key(&self, uid: &Uid, rest: &str) -> String {
        format!("{{{}:{}}}:{LAYOUT_VERSION}:{rest}", self.prefix, uid.as_str())
    }

    /// The meter hash: minute, hour and day roll-ups, every lane's minutes, the running window
    /// sums and the pruning state, all in one key (see `lua/meter.lua`).
    pub fn meter(&self, uid: &Uid) -> String {
        format!("{{{}:{}}}:{METER_LAYOUT_VERSION}:meter", self.prefix, uid.as_str())
    }

    /// A `KEYS`/`SCAN` pattern matching the meter hash of every user of this prefix. Only `*` is a
    /// glob character in it: the prefix cannot contain `?`, `[`, `]` or `\`.
    pub fn meter_pattern(&self) -> String {
        format!("{{{}:*}}:{METER_LAYOUT_VERSION}:meter", self.prefix)
    }

    /// The user whose meter hash `key` is, if it is one of this prefix.
    pub fn uid_of_meter(&self, key: &str) -> Option<Uid> {
        let inner = key.strip_prefix('{')?.strip_suffix(&format!("}}:{METER_LAYOUT_VERSION}:meter"))?;
        Uid::parse(inner.strip_prefix(&self.prefix)?.strip_prefix(':')?).ok()
    }

    /// The meter keys of the old layout (`fu1`), which `fairuse migrate` converts into [`Self::meter`]:
    /// the state hash (`hz`, `pm`), the capped minute, hour and day hashes, then one minute hash
    /// per lane in `Lane::ALL` order. Nothing but the migration reads or writes them.
    pub fn old_meter_keys(&self, uid: &Uid) -> [String; 8] {
        let lane = |l: Lane| self.user_key(uid, &format!("lane:{}", l.as_str()));
        [
            self.user_key(uid, "meter"),
            self.user_key(uid, "capped:m"),
            self.user_key(uid, "capped:h"),
            self.user_key(uid, "capped:d"),
            lane(Lane::Realtime),
            lane(Lane::SyncFresh),
            lane(Lane::SyncBackfill),
            lane(Lane::CustomStt),
        ]
    }

    /// A `SCAN` pattern matching the old layout's meter state key of every user of this prefix
    /// (the old record script wrote it with every bucket, under the same expiry).
    pub fn old_meter_state_pattern(&self) -> String {
        format!("{{{}:*}}:{LAYOUT_VERSION}:meter", self.prefix)
    }

    /// The user whose old-layout meter state key `key` is, if it is one of this prefix. A key
    /// that only looks like one (an idempotency key may contain `}:fu1:meter`) names no valid uid,
    /// since uids cannot contain braces.
    pub fn uid_of_old_meter_state(&self, key: &str) -> Option<Uid> {
        let inner = key.strip_prefix('{')?.strip_suffix(&format!("}}:{LAYOUT_VERSION}:meter"))?;
        Uid::parse(inner.strip_prefix(&self.prefix)?.strip_prefix(':')?).ok()
    }

    /// String: the meter layout every user's meter is in (`fu2`), written by `fairuse migrate`
    /// once no old-layout meter is left, so `fairuse serve` can check the upgrade with one GET.
    pub fn meter_layout_marker(&self) -> String {
        format!("{}:meter-layout", self.prefix)
    }

    /// String: when the idempotency key was first seen (ms, by the caller's clock).
    pub fn idempotency(&self, uid: &Uid, lane: Lane, key: &str) -> String {
        self.user_key(uid, &format!("idem:{}:{key}", lane.as_str()))
    }

    /// String `"<max speech ms> <max stt ms> <last seen ms>"` of one streaming session.
    pub fn session(&self, uid: &Uid, session_id: &str) -> String {
        self.user_key(uid, &format!("session:{session_id}"))
    }

    /// Integer: STT ms forwarded on one UTC day.
    pub fn stt_budget(&self, uid: &Uid, day: i64) -> String {
        self.user_key(uid, &format!("stt:{day}"))
    }

    /// Present once the day's `budget_exhausted` event was noted.
    pub fn stt_exhausted(&self, uid: &Uid, day: i64) -> String {
        self.user_key(uid, &format!("stt-exhausted:{day}"))
    }

    /// A lock. Not per user (the key is the caller's), and a single-key script, so no hash tag.
    pub fn lock(&self, key: &str) -> String {
        format!("{}:{LAYOUT_VERSION}:lock:{key}", self.prefix)
    }

    /// The counter of one fixed rate-limit window (`window` = now / window length).
    pub fn rate_limit(&self, key: &str, window: i64) -> String {
        format!("{}:{LAYOUT_VERSION}:rate:{window}:{key}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(s: &str) -> Uid {
        Uid::parse(s).unwrap()
    }

    #[test]
    fn meter_keys_name_their_user_and_match_the_pattern() {
        let layout = KeyLayout::new("fu-test").unwrap();
        let key = layout.meter(&uid("a:b@c.d"));
        assert_eq!(layout.uid_of_meter(&key), Some(uid("a:b@c.d")));
        assert_eq!(layout.meter_pattern(), "{fu-test:*}:fu2:meter");
        let other = KeyLayout::new("fu").unwrap();
        assert_eq!(other.uid_of_meter(&key), None, "another prefix's key");
        assert_eq!(layout.uid_of_meter(&layout.session(&uid("a"), "s")), None, "not a meter key");
    }

    #[test]
    fn old_meter_state_keys_name_their_user_and_nothing_else_does() {
        let layout = KeyLayout::new("fu-test").unwrap();
        let user = uid("a:b@c.d");
        let [state, ..] = layout.old_meter_keys(&user);
        assert_eq!(state, "{fu-test:a:b@c.d}:fu1:meter");
        assert_eq!(layout.uid_of_old_meter_state(&state), Some(user.clone()));
        assert_eq!(layout.old_meter_state_pattern(), "{fu-test:*}:fu1:meter");
        // An idempotency key ending like a state key matches the pattern but names no user.
        let lookalike = layout.idempotency(&user, Lane::Realtime, "x}:fu1:meter");
        assert_eq!(layout.uid_of_old_meter_state(&lookalike), None);
        assert_eq!(layout.uid_of_old_meter_state(&layout.meter(&user)), None, "the new meter hash");
        for key in layout.old_meter_keys(&user) {
            assert!(key.starts_with(&format!("{}:{LAYOUT_VERSION}:", layout.user_tag(&user))), "{key}");
        }
    }

    #[test]
    fn every_user_key_starts_with_the_users_hash_tag() {
        let layout = KeyLayout::new("app-1").unwrap();
        let u = uid("user:42@x");
        let tag = layout.user_tag(&u);
        assert_eq!(tag, "{app-1:user:42@x}");
        assert!(layout.meter(&u).starts_with(&format!("{tag}:{METER_LAYOUT_VERSION}:")));
        let mut keys = vec![layout.idempotency(&u, Lane::SyncFresh, "k{odd}")];
        keys.push(layout.session(&u, "s}1"));
        keys.push(layout.stt_budget(&u, 20_532));
        keys.push(layout.stt_exhausted(&u, 20_532));
        for key in keys {
            assert!(key.starts_with(&format!("{tag}:{LAYOUT_VERSION}:")), "{key}");
        }
    }

    #[test]
    fn prefixes_that_could_break_the_hash_tag_are_refused() {
        for bad in ["", "a:b", "a{b", "a}b", "a b", &"x".repeat(65)] {
            assert!(matches!(KeyLayout::new(bad), Err(StoreError::Invalid(_))), "{bad:?}");
        }
        assert!(KeyLayout::new("fairuse_prod.eu-1").is_ok());
    }
}
