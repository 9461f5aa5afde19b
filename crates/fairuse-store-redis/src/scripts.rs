//! The Lua scripts (in `src/lua/`) and their SHA1 digests, computed once at connect.

/// A script's source and the digest EVALSHA names it by.
pub(crate) struct LuaScript {
    name: &'static str,
    source: &'static str,
    sha: String,
}

impl LuaScript {
    fn new(name: &'static str, source: &'static str) -> Self {
        LuaScript { name, source, sha: redis::Script::new(source).get_hash().to_owned() }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn source(&self) -> &'static str {
        self.source
    }

    pub(crate) fn sha(&self) -> &str {
        &self.sha
    }
}

pub(crate) struct Scripts {
    pub(crate) record: LuaScript,
    pub(crate) totals: LuaScript,
    pub(crate) range: LuaScript,
    pub(crate) newest: LuaScript,
    pub(crate) migrate_fu1: LuaScript,
    pub(crate) lock_acquire: LuaScript,
    pub(crate) lock_release: LuaScript,
    pub(crate) lock_renew: LuaScript,
    pub(crate) rate_hit: LuaScript,
    pub(crate) budget_add: LuaScript,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            // The meter scripts share the layout's helpers (`lua/meter.lua`), prepended to each.
            record: LuaScript::new("record", concat!(include_str!("lua/meter.lua"), include_str!("lua/record.lua"))),
            totals: LuaScript::new("totals", concat!(include_str!("lua/meter.lua"), include_str!("lua/totals.lua"))),
            range: LuaScript::new("range", concat!(include_str!("lua/meter.lua"), include_str!("lua/range.lua"))),
            newest: LuaScript::new("newest", concat!(include_str!("lua/meter.lua"), include_str!("lua/newest.lua"))),
            migrate_fu1: LuaScript::new(
                "migrate_fu1",
                concat!(include_str!("lua/meter.lua"), include_str!("lua/migrate_fu1.lua")),
            ),
            lock_acquire: LuaScript::new("lock_acquire", include_str!("lua/lock_acquire.lua")),
            lock_release: LuaScript::new("lock_release", include_str!("lua/lock_release.lua")),
            lock_renew: LuaScript::new("lock_renew", include_str!("lua/lock_renew.lua")),
            rate_hit: LuaScript::new("rate_hit", include_str!("lua/rate_hit.lua")),
            budget_add: LuaScript::new("budget_add", include_str!("lua/budget_add.lua")),
        }
    }
}
