//! The enforcement stages, in order of severity.

use serde::{Deserialize, Serialize};

use crate::error::InputError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    None,
    Warning,
    Throttle,
    Restrict,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::None, Stage::Warning, Stage::Throttle, Stage::Restrict];

    pub fn parse(text: &str) -> Result<Stage, InputError> {
        match text {
            "none" => Ok(Stage::None),
            "warning" => Ok(Stage::Warning),
            "throttle" => Ok(Stage::Throttle),
            "restrict" => Ok(Stage::Restrict),
            other => Err(InputError::new(
                "stage",
                format!("unknown stage {other:?}; expected none, warning, throttle or restrict"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "none",
            Stage::Warning => "warning",
            Stage::Throttle => "throttle",
            Stage::Restrict => "restrict",
        }
    }

    /// One stage lower; `none` stays `none`.
    pub fn step_down(self) -> Stage {
        match self {
            Stage::None | Stage::Warning => Stage::None,
            Stage::Throttle => Stage::Warning,
            Stage::Restrict => Stage::Throttle,
        }
    }

    /// One stage higher; `restrict` stays `restrict`.
    pub fn step_up(self) -> Stage {
        match self {
            Stage::None => Stage::Warning,
            Stage::Warning => Stage::Throttle,
            Stage::Throttle | Stage::Restrict => Stage::Restrict,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
