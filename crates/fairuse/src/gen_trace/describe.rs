//! Titles and overviews: what a host's summarizer would store for each planned conversation.

use super::corpus::{
    BOARD_MEETING, BOOKS, CALL_TOPICS, CARTOONS, CHAPTER_TITLES, CLIENT_DOCUMENTS, CLIENTS, COMPANIES, COURSES,
    DOCUMENT_TITLES, EPISODE_TITLES, FAMILY_TOPICS, HONEST_MEDIA_TOPICS, HONEST_TOPICS, ISSUES, LECTURE_OVERVIEWS,
    LECTURE_SUBJECTS, MEETING_TOPICS, MOVIES, NAMES, NIGHT_HANDOVERS, NIGHT_TOPICS, PLOTS, PODCAST_TOPICS, PODCASTS,
    PROJECTS, STUDY_TOPICS, TV_SHOWS,
};
use super::plan::{Content, ConvItem};
use super::rng::mix;

/// `{name}`, `{name2}`, `{company}`, `{project}`, `{issue}` from the bits of `b`; `{n}` is `n`.
fn fill(template: &str, b: u32, n: u32) -> String {
    if !template.contains('{') {
        return template.to_owned();
    }
    let name = (b % 16) as usize;
    let mut name2 = ((b >> 4) % 16) as usize;
    if name2 == name {
        name2 = (name2 + 1) % NAMES.len();
    }
    template
        .replace("{name}", NAMES[name])
        .replace("{name2}", NAMES[name2])
        .replace("{company}", COMPANIES[(b >> 8) as usize % COMPANIES.len()])
        .replace("{project}", PROJECTS[(b >> 12) as usize % PROJECTS.len()])
        .replace("{issue}", ISSUES[(b >> 16) as usize % ISSUES.len()])
        .replace("{n}", &n.to_string())
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// The title and overview a host would store for this conversation; `salt` (the user's) makes
/// the summarizer's choices differ between users who play the same item.
pub(super) fn describe(item: &ConvItem, salt: u64) -> (String, String) {
    let (a, b, c) = (usize::from(item.a), item.b, item.c as usize);
    // Which of the five descriptions the summarizer wrote for this item; the last names no media.
    let variant = (mix(&[salt, u64::from(item.a), u64::from(b), c as u64, item.content as u64]) % 5) as usize;
    let plot = PLOTS[(mix(&[salt, u64::from(b), c as u64, 7]) % PLOTS.len() as u64) as usize];
    match item.content {
        Content::Honest => {
            let topics = HONEST_TOPICS[usize::from(item.category)];
            let (title, overview) = topics[a % topics.len()];
            let name = NAMES[b as usize % NAMES.len()];
            (title.replace("{name}", name), overview.replace("{name}", name))
        }
        Content::HonestMedia => {
            let (title, overview) = HONEST_MEDIA_TOPICS[a % HONEST_MEDIA_TOPICS.len()];
            let movie = MOVIES[(b >> 20) as usize % MOVIES.len()];
            let podcast = PODCASTS[(b >> 24) as usize % PODCASTS.len()];
            let fill_media = |t: &str| fill(&t.replace("{movie}", movie).replace("{podcast}", podcast), b, 0);
            (fill_media(title), fill_media(overview))
        }
        Content::Meeting => {
            let (title, overview) = MEETING_TOPICS[a % MEETING_TOPICS.len()];
            (fill(title, b, c as u32), fill(overview, b, c as u32))
        }
        Content::BoardMeeting => (fill(BOARD_MEETING.0, b, c as u32), fill(BOARD_MEETING.1, b, c as u32)),
        Content::LiveLecture => {
            let (code, name, topics) = COURSES[a % COURSES.len()];
            let topic = topics[(b >> 20) as usize % topics.len()];
            let title = match item.style {
                0 => format!("{code} lecture — week {c}"),
                1 => format!("{code} Lecture {c}"),
                2 => format!("{name}: {topic}"),
                _ => format!("{name} class"),
            };
            let overview = LECTURE_OVERVIEWS[(b >> 24) as usize % LECTURE_OVERVIEWS.len()];
            (title, capitalized(&fill(overview, b, 0).replace("{topic}", topic)))
        }
        Content::Study => {
            let (title, overview) = STUDY_TOPICS[a % STUDY_TOPICS.len()];
            (fill(title, b, 0), fill(overview, b, 0))
        }
        Content::Call => {
            let (title, overview) = CALL_TOPICS[a % CALL_TOPICS.len()];
            (fill(title, b, c as u32), fill(overview, b, c as u32))
        }
        Content::Night => {
            let (title, overview) = NIGHT_TOPICS[a % NIGHT_TOPICS.len()];
            (fill(title, b, 0), fill(overview, b, 0))
        }
        Content::NightHandover => {
            let (title, overview) = NIGHT_HANDOVERS[a % NIGHT_HANDOVERS.len()];
            (fill(title, b, 0), fill(overview, b, 0))
        }
        Content::Family => {
            let (title, overview) = FAMILY_TOPICS[a % FAMILY_TOPICS.len()];
            (fill(title, b, 0), fill(overview, b, 0))
        }
        Content::Cartoon => {
            let cartoon = CARTOONS[a % CARTOONS.len()];
            if item.style == 1 {
                (
                    format!("{cartoon} Episode {c}"),
                    format!("An episode of {cartoon} playing on the TV while the kids had a snack."),
                )
            } else {
                (format!("Kids watching {cartoon}"), format!("The kids watched {cartoon}: cartoon voices and songs."))
            }
        }
        Content::BedtimeStory => (
            format!("Bedtime story: {} chapter {c}", BOOKS[a % BOOKS.len()]),
            format!("Read chapter {c} of \"{}\" to the kids; they asked what happens next.", BOOKS[a % BOOKS.len()]),
        ),
        Content::MovieNight => (
            format!("Family movie night: {}", MOVIES[a % MOVIES.len()]),
            format!("Watched the movie {} together; mostly the film's dialogue and music.", MOVIES[a % MOVIES.len()]),
        ),
        Content::Chapter => {
            let book = BOOKS[a % BOOKS.len()];
            let title = match item.style {
                0 => format!("{book} - Chapter {b}"),
                1 => format!("Chapter {b}: {}", CHAPTER_TITLES[b as usize % CHAPTER_TITLES.len()]),
                _ => format!("{book}, Part {b}"),
            };
            let overview = match variant {
                0 => {
                    format!("A single narrator reads chapter {b} of \"{book}\"; continuous narration, no other voices.")
                }
                1 => format!("Narration continues: {plot}."),
                2 => format!("The narrator describes how {plot}."),
                3 => format!("Audiobook chapter: {plot}."),
                _ => format!("{}; one voice throughout, no conversation.", capitalized(plot)),
            };
            (title, overview)
        }
        Content::PodcastEpisode => {
            let show = PODCASTS[a % PODCASTS.len()];
            let topic = PODCAST_TOPICS[c % PODCAST_TOPICS.len()];
            let headline = EPISODE_TITLES[c % EPISODE_TITLES.len()];
            let title = match item.style {
                0 => format!("{show} Episode {b}"),
                1 => format!("{show} Ep. {b}: {headline}"),
                _ => format!("{headline} | {show}"),
            };
            let overview = match variant {
                0 => format!("Podcast episode: two hosts and a guest talk about {topic}; opens with an ad read."),
                1 => format!("In this episode of {show}, the hosts discuss {topic}."),
                2 => format!(
                    "{show}: a conversation about {topic} with a guest expert, sponsored by a meal-kit company."
                ),
                3 => format!("The podcast {show} on {topic}, with listener questions at the end."),
                _ => format!("The hosts of {show} interview an author about {topic}."),
            };
            (title, overview)
        }
        Content::TvEpisode => {
            let show = TV_SHOWS[a % TV_SHOWS.len()];
            let title = match item.style {
                0 => format!("{show} Season {b} Episode {c}"),
                1 => format!("{show} S{b:02}E{c:02}"),
                _ => format!("{show}: {}", CHAPTER_TITLES[(b as usize * 31 + c) % CHAPTER_TITLES.len()]),
            };
            let overview = match variant {
                0 => {
                    format!("Dialogue from the TV show {show}: several characters, background music and a laugh track.")
                }
                1 => format!("An episode of {show}: {plot}."),
                2 => format!("Scenes from the sitcom {show}; {plot}."),
                3 => format!("{show}, season {b}: {plot}, with the show's soundtrack between scenes."),
                _ => format!("Several characters talk over music: {plot}."),
            };
            (title, overview)
        }
        Content::Movie => {
            let movie = MOVIES[a % MOVIES.len()];
            let title = if item.style == 2 { format!("Watching {movie}") } else { format!("{movie} (movie)") };
            let overview = match variant {
                0 => format!("The movie {movie} playing on the TV: dialogue, soundtrack and sound effects."),
                1 => format!("Film: {plot}."),
                2 => format!("{movie}, a feature film: {plot}."),
                3 => format!("Movie dialogue: {plot}."),
                _ => format!("Characters argue and music swells: {plot}."),
            };
            (title, overview)
        }
        Content::Lecture => {
            let subject = LECTURE_SUBJECTS[a % LECTURE_SUBJECTS.len()];
            let title = match item.style {
                0 => format!("Recorded lecture {b}"),
                1 => format!("{} — Lecture {b}", capitalized(subject)),
                _ => format!("{} lesson {b}", capitalized(subject)),
            };
            let overview = match variant {
                0 => format!(
                    "Recorded lecture {b} on {subject} played back from a video; one speaker, no questions or interaction."
                ),
                1 => {
                    format!("A lecture recording on {subject}: one speaker works through the material without pauses.")
                }
                2 => format!("YouTube lecture {b} from an online {subject} course."),
                3 => format!("Video lecture {b} of an online {subject} course, played at normal speed."),
                _ => format!("One speaker explains {subject} for the whole session, without pauses."),
            };
            (title, overview)
        }
        Content::ClientFile => {
            let client = CLIENTS[a % CLIENTS.len()];
            let document = CLIENT_DOCUMENTS[c % CLIENT_DOCUMENTS.len()];
            let title = match item.style {
                0 => format!("Client file #{b} transcription job"),
                1 => format!("{client} — {document} #{b}"),
                _ => format!("{} ({client})", DOCUMENT_TITLES[c % DOCUMENT_TITLES.len()]),
            };
            let overview = match variant {
                0 => format!("Paid transcription job: {document} for client {client}, delivered as a text file."),
                1 => format!("Transcription job {b}: {document} from {client}."),
                2 => format!("Client file {b}: {document}, speaker labels requested."),
                3 => format!("{}, transcription job for {client}, due tomorrow.", capitalized(document)),
                _ => format!("{} from {client}, transcribed for delivery.", capitalized(document)),
            };
            (title, overview)
        }
    }
}
