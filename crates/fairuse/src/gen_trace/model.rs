//! Who the users are and how much they speak: the usage distribution of SPEC section 1, the time
//! zones of the user base, and the populations (honest, heavy honest, abusers) with their labels.

use super::rng::Rng;

const MEDIAN_DAILY_SPEECH_MIN: f64 = 12.7;
const P95_DAILY_SPEECH_MIN: f64 = 126.0;
const P99_DAILY_SPEECH_MIN: f64 = 204.0;
/// Nobody honest speaks more than this in a day (Omi's worst user: 11.7 h).
pub(super) const MAX_DAILY_SPEECH_MIN: f64 = 720.0;
const Z95: f64 = 1.644_853_626_951_472;
const Z99: f64 = 2.326_347_874_040_841;
/// Share of the log-variance of daily speech that belongs to the user rather than the day.
const USER_SHARE_OF_VARIANCE: f64 = 0.7;

/// Daily speech (minutes) at standard-normal quantile `z`: log-normal with median 12.7 min and
/// P95 126 min; above the P95 the log-slope is flattened so the P99 is 204 min (a plain
/// log-normal through the first two points would put the P99 at 5.4 h and the worst user at days).
fn daily_speech_minutes(z: f64) -> f64 {
    let body_sigma = (P95_DAILY_SPEECH_MIN / MEDIAN_DAILY_SPEECH_MIN).ln() / Z95;
    let ln = if z <= Z95 {
        MEDIAN_DAILY_SPEECH_MIN.ln() + body_sigma * z
    } else {
        let tail_sigma = (P99_DAILY_SPEECH_MIN / P95_DAILY_SPEECH_MIN).ln() / (Z99 - Z95);
        P95_DAILY_SPEECH_MIN.ln() + tail_sigma * (z - Z95)
    };
    ln.exp().min(MAX_DAILY_SPEECH_MIN)
}

/// One user-day's speech in minutes: the user's persistent level plus the day's variation, mixed
/// so that the quantile is still standard normal and the population matches SPEC section 1.
pub(super) fn user_day_speech_minutes(z_user: f64, rng: &mut Rng) -> f64 {
    let z = USER_SHARE_OF_VARIANCE.sqrt() * z_user + (1.0 - USER_SHARE_OF_VARIANCE).sqrt() * rng.normal();
    daily_speech_minutes(z)
}

/// UTC offsets (minutes) of the user base, with weights: the Americas, Europe, India, East Asia.
pub(super) const TIME_ZONES: [i64; 10] = [-480, -360, -300, -180, 0, 60, 120, 330, 480, 540];
pub(super) const TIME_ZONE_WEIGHTS: [f64; 10] = [0.10, 0.05, 0.15, 0.05, 0.10, 0.20, 0.05, 0.10, 0.10, 0.10];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AbuseType {
    Audiobook,
    Podcast,
    TvMovie,
    Prerecorded,
    Commercial,
}

pub(super) const ABUSE_TYPES: [AbuseType; 5] =
    [AbuseType::Audiobook, AbuseType::Podcast, AbuseType::TvMovie, AbuseType::Prerecorded, AbuseType::Commercial];

impl AbuseType {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AbuseType::Audiobook => "audiobook",
            AbuseType::Podcast => "podcast",
            AbuseType::TvMovie => "tv_movie",
            AbuseType::Prerecorded => "prerecorded",
            AbuseType::Commercial => "commercial",
        }
    }
}

/// The heavy honest populations: daily speech far above the caps, for reasons the product is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeavyKind {
    /// A manager in meetings all day, with a board meeting split in two now and then.
    Meetings,
    /// A student with five live courses, numbered lectures, study groups.
    Lectures,
    /// A sales or support rep on the phone all day: thirty short calls in two categories.
    Calls,
    /// A night-shift nurse: speech from 22:00 to 07:00 five nights a week.
    NightShift,
    /// One device shared by a family: many speakers, every category, cartoons and a movie night.
    Family,
}

pub(super) const HEAVY_KINDS: [HeavyKind; 5] =
    [HeavyKind::Meetings, HeavyKind::Lectures, HeavyKind::Calls, HeavyKind::NightShift, HeavyKind::Family];

/// Who a user is: the label `--labels` writes and `fairuse eval` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Population {
    Honest,
    Heavy(HeavyKind),
    Abuser(AbuseType),
}

impl Population {
    pub(super) fn label(self) -> &'static str {
        match self {
            Population::Honest => "honest",
            Population::Heavy(HeavyKind::Meetings) => "honest_heavy_meetings",
            Population::Heavy(HeavyKind::Lectures) => "honest_lectures",
            Population::Heavy(HeavyKind::Calls) => "honest_calls",
            Population::Heavy(HeavyKind::NightShift) => "honest_night_shift",
            Population::Heavy(HeavyKind::Family) => "honest_family",
            Population::Abuser(AbuseType::Audiobook) => "abuser_audiobook",
            Population::Abuser(AbuseType::Podcast) => "abuser_podcast",
            Population::Abuser(AbuseType::TvMovie) => "abuser_tv_movie",
            Population::Abuser(AbuseType::Prerecorded) => "abuser_prerecorded",
            Population::Abuser(AbuseType::Commercial) => "abuser_commercial",
        }
    }
}

/// Every label `gen-trace --labels` can write, honest ones first.
pub const LABELS: [&str; 11] = [
    "honest",
    "honest_heavy_meetings",
    "honest_lectures",
    "honest_calls",
    "honest_night_shift",
    "honest_family",
    "abuser_audiobook",
    "abuser_podcast",
    "abuser_tv_movie",
    "abuser_prerecorded",
    "abuser_commercial",
];
