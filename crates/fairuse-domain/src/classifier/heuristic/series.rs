//! Numbered series in titles: chapters, episodes, parts, lectures and plain templates with a
//! counter ("Chapter 12", "S02E05", "Part II", "第3話", "Morning Drive 14"), in several languages.

use super::super::UsageType;
use super::words::fold;

/// What a numbered title is a part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SeriesKind {
    Chapter,
    Book,
    Episode,
    TvEpisode,
    Lecture,
    Numbered,
}

impl SeriesKind {
    pub(super) fn usage_type(self) -> Option<UsageType> {
        match self {
            SeriesKind::Chapter | SeriesKind::Book => Some(UsageType::Audiobook),
            SeriesKind::Episode => Some(UsageType::Podcast),
            SeriesKind::TvEpisode => Some(UsageType::TvMovie),
            SeriesKind::Lecture => Some(UsageType::Prerecorded),
            SeriesKind::Numbered => None,
        }
    }

    pub(super) fn noun(self) -> &'static str {
        match self {
            SeriesKind::Chapter => "chapter",
            SeriesKind::Book => "book",
            SeriesKind::Episode | SeriesKind::TvEpisode => "episode",
            SeriesKind::Lecture => "lecture",
            SeriesKind::Numbered => "item",
        }
    }

    /// A numbered chapter or episode is recorded media by its very name, in any language
    /// ("Capítulo 45", "Folge 12", "第3話"), as the words "chapter" and "episode" are.
    pub(super) fn names_media(self) -> Option<&'static str> {
        match self {
            SeriesKind::Chapter => Some("numbered chapter"),
            SeriesKind::Episode => Some("numbered episode"),
            _ => None,
        }
    }
}

/// Words that number the items of a series, in several languages ([`fold`]ed). "Clase",
/// "sesión", "Sitzung" number live things too, so they are not here or only as plain numbering.
const SERIES_MARKERS: &[(&str, SeriesKind)] = &[
    ("chapter", SeriesKind::Chapter),
    ("chap", SeriesKind::Chapter),
    ("capitulo", SeriesKind::Chapter),
    ("kapitel", SeriesKind::Chapter),
    ("chapitre", SeriesKind::Chapter),
    ("capitolo", SeriesKind::Chapter),
    ("hoofdstuk", SeriesKind::Chapter),
    ("book", SeriesKind::Book),
    ("libro", SeriesKind::Book),
    ("buch", SeriesKind::Book),
    ("livre", SeriesKind::Book),
    ("tomo", SeriesKind::Book),
    ("episode", SeriesKind::Episode),
    ("ep", SeriesKind::Episode),
    ("episodio", SeriesKind::Episode),
    ("epizod", SeriesKind::Episode),
    ("folge", SeriesKind::Episode),
    ("aflevering", SeriesKind::Episode),
    ("puntata", SeriesKind::Episode),
    ("エピソード", SeriesKind::Episode),
    // The broadcast episode's own word, with its number, in more scripts: Arabic, Persian,
    // Turkish, Russian, Ukrainian, Polish, Czech and Slovak, Finnish, Greek, Thai.
    // ("حلقة" alone is a study circle too: only "حلقة 12" numbers an episode.)
    ("الحلقة", SeriesKind::Episode),
    ("حلقة", SeriesKind::Episode),
    ("قسمت", SeriesKind::Episode),
    ("bolum", SeriesKind::Episode),
    ("серия", SeriesKind::Episode),
    ("серія", SeriesKind::Episode),
    ("odcinek", SeriesKind::Episode),
    ("epizoda", SeriesKind::Episode),
    ("jakso", SeriesKind::Episode),
    ("επεισόδιο", SeriesKind::Episode),
    ("ตอนที่", SeriesKind::Episode),
    ("lecture", SeriesKind::Lecture),
    ("lesson", SeriesKind::Lecture),
    ("leccion", SeriesKind::Lecture),
    ("lektion", SeriesKind::Lecture),
    ("lecon", SeriesKind::Lecture),
    ("lezione", SeriesKind::Lecture),
    ("licao", SeriesKind::Lecture),
    ("aula", SeriesKind::Lecture),
    ("module", SeriesKind::Lecture),
    ("modulo", SeriesKind::Lecture),
    ("modul", SeriesKind::Lecture),
    ("part", SeriesKind::Numbered),
    ("parte", SeriesKind::Numbered),
    ("teil", SeriesKind::Numbered),
    ("partie", SeriesKind::Numbered),
    ("deel", SeriesKind::Numbered),
    ("track", SeriesKind::Numbered),
    ("pista", SeriesKind::Numbered),
    ("session", SeriesKind::Numbered),
    ("sesion", SeriesKind::Numbered),
    ("vol", SeriesKind::Numbered),
    ("volume", SeriesKind::Numbered),
    ("volumen", SeriesKind::Numbered),
    ("day", SeriesKind::Numbered),
    ("dia", SeriesKind::Numbered),
    ("tag", SeriesKind::Numbered),
    ("jour", SeriesKind::Numbered),
    ("giorno", SeriesKind::Numbered),
    ("no", SeriesKind::Numbered),
    ("nr", SeriesKind::Numbered),
    ("#", SeriesKind::Numbered),
];

/// Words for season, and the words for episode that may follow "season 2".
const SEASON_MARKERS: [&str; 6] = ["season", "temporada", "staffel", "saison", "seizoen", "stagione"];
const SEASON_EPISODE_MARKERS: [&str; 9] =
    ["episode", "ep", "episodio", "folge", "capitulo", "cap", "aflevering", "puntata", "chapitre"];

/// Small numbers written out, after a marker of three letters or more ("Part One", "Parte dos").
const NUMBER_WORDS: [(&str, u32); 42] = [
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("uno", 1),
    ("una", 1),
    ("dos", 2),
    ("tres", 3),
    ("cuatro", 4),
    ("cinco", 5),
    ("seis", 6),
    ("siete", 7),
    ("ocho", 8),
    ("nueve", 9),
    ("diez", 10),
    ("une", 1),
    ("deux", 2),
    ("trois", 3),
    ("quatre", 4),
    ("cinq", 5),
    ("sept", 7),
    ("huit", 8),
    ("neuf", 9),
    ("dix", 10),
    ("eins", 1),
    ("zwei", 2),
    ("drei", 3),
    ("vier", 4),
    ("funf", 5),
    ("sechs", 6),
    ("sieben", 7),
    ("acht", 8),
    ("neun", 9),
    ("zehn", 10),
];

/// A roman numeral up to 39 ("ii", "xiv"), written the canonical way.
fn roman(token: &str) -> Option<u32> {
    const ONES: [&str; 10] = ["", "i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix"];
    let tens = token.bytes().take_while(|&b| b == b'x').count();
    let ones = ONES.iter().position(|&o| o == &token[tens..])?;
    let n = (tens * 10 + ones) as u32;
    (tens <= 3 && n > 0).then_some(n)
}

/// The number right after position `at` (skipping spaces, `#`, `.`, `:`, `º`), and where it ends.
/// With `words`, after at least one separator, also a roman numeral ("Part II"; a single letter
/// only at the end or before punctuation: "Part I: ...", not "part i think") or a small number
/// written out ("Part One", "Parte dos", "Tag drei").
fn number_at(text: &str, at: usize, words: bool) -> Option<(u32, usize)> {
    let rest = &text[at..];
    let trimmed = rest.trim_start_matches([' ', '#', '.', ':', 'º', '°']);
    let skipped = rest.len() - trimmed.len();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        if digits > 6 || trimmed.as_bytes().get(digits).is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        return trimmed[..digits].parse().ok().map(|n| (n, at + skipped + digits));
    }
    if !words || skipped == 0 {
        return None;
    }
    let len = trimmed.find(|c: char| !c.is_alphanumeric()).unwrap_or(trimmed.len());
    let token = &trimmed[..len];
    let after = trimmed[len..].trim_start_matches(' ');
    let alone = after.is_empty() || after.starts_with([':', ',', '.', ')', '(', '-', '–', '—', '|']);
    let n = roman(token)
        .filter(|_| len > 1 || alone)
        .or_else(|| NUMBER_WORDS.iter().find(|(w, _)| *w == token).map(|&(_, n)| n))?;
    Some((n, at + skipped + len))
}

/// "第12章", "第3話", "第五回": chapters, episodes, lessons and volumes numbered the Japanese and
/// Chinese way, in [`fold`]ed text.
fn cjk_series(text: &str) -> Option<(SeriesKind, String, u32)> {
    for (at, _) in text.match_indices('第') {
        let rest = &text[at + '第'.len_utf8()..];
        let (mut n, mut current, mut used) = (0u32, 0u32, 0usize);
        for c in rest.chars() {
            let digit = match c {
                '0'..='9' => c as u32 - '0' as u32,
                '〇' | '零' => 0,
                '一' => 1,
                '二' | '两' => 2,
                '三' => 3,
                '四' => 4,
                '五' => 5,
                '六' => 6,
                '七' => 7,
                '八' => 8,
                '九' => 9,
                '十' | '百' => {
                    n = n.saturating_add(current.max(1) * if c == '十' { 10 } else { 100 });
                    current = 0;
                    used += c.len_utf8();
                    continue;
                }
                _ => break,
            };
            current = current.saturating_mul(10).saturating_add(digit);
            used += c.len_utf8();
        }
        let n = n.saturating_add(current);
        let kind = match rest[used..].chars().next() {
            _ if used == 0 => continue,
            Some('章') => SeriesKind::Chapter,
            Some('話' | '话' | '集') => SeriesKind::Episode,
            Some('回') => SeriesKind::Numbered,
            Some('課' | '课' | '講' | '讲' | '节' | '節') => SeriesKind::Lecture,
            Some('部' | '巻' | '卷') => SeriesKind::Book,
            _ => continue,
        };
        let stem = text[..at].trim_matches(|c: char| !c.is_alphanumeric()).to_owned();
        return Some((kind, stem, n));
    }
    None
}

/// The series a title belongs to: its kind, its stem (the [`fold`]ed text before the marker) and
/// its number. "Harry Potter - Chapter 12" is (chapter, "harry potter", 12); "Capítulo 45: La
/// traición" is (chapter, "", 45); "Show Season 2 Episode 3", "Show Temporada 2 Capítulo 3" and
/// "Show S02E03" are (TV episode, "show", 2003); "Libro 第3話" is (episode, "libro", 3).
/// "CS101 lecture — week 3" has no number after its marker, so it is not part of a series.
pub(super) fn series_of(title: &str) -> Option<(SeriesKind, String, u32)> {
    let lower = fold(title);
    let stem = |end: usize| lower[..end].trim_matches(|c: char| !c.is_alphanumeric()).to_owned();
    let word_start = |i: usize| !lower[..i].chars().next_back().is_some_and(char::is_alphanumeric);
    let word_end = |i: usize| !lower[i..].chars().next().is_some_and(char::is_alphabetic);
    // "season 2 episode 3", "season 2, ep. 3", "temporada 2 capitulo 3", "staffel 2 folge 3".
    for season in SEASON_MARKERS {
        for (at, _) in lower.match_indices(season) {
            if !word_start(at) {
                continue;
            }
            let Some((season_n, end)) = number_at(&lower, at + season.len(), true) else { continue };
            let rest = lower[end..].trim_start_matches([' ', ',', '-', '·', '–', '—', ':']);
            let offset = lower.len() - rest.len();
            for marker in SEASON_EPISODE_MARKERS {
                if rest.starts_with(marker)
                    && let Some((episode, _)) = number_at(&lower, offset + marker.len(), true)
                {
                    return Some((SeriesKind::TvEpisode, stem(at), season_n * 1000 + episode.min(999)));
                }
            }
        }
    }
    // "s02e03", and "t02e03" (temporada).
    for (i, c) in lower.char_indices() {
        if !(c == 's' || c == 't') || !word_start(i) {
            continue;
        }
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let rest = &lower[i + 1..];
        let season_digits = digits(rest);
        if (1..=2).contains(&season_digits) && rest[season_digits..].starts_with('e') {
            let ep = &rest[season_digits + 1..];
            let ep_digits = digits(ep);
            let ends_word = ep[ep_digits..].chars().next().is_none_or(|b| !b.is_alphanumeric());
            if (1..=3).contains(&ep_digits) && ends_word {
                let season: u32 = rest[..season_digits].parse().ok()?;
                let episode: u32 = ep[..ep_digits].parse().ok()?;
                return Some((SeriesKind::TvEpisode, stem(i), season * 1000 + episode));
            }
        }
    }
    // The earliest marker followed by a number.
    let mut best: Option<(usize, SeriesKind, u32)> = None;
    for &(marker, kind) in SERIES_MARKERS {
        // Written-out numbers only after real words: "no one" is nobody's item one.
        let words = marker.len() >= 3;
        for (at, _) in lower.match_indices(marker) {
            let end = at + marker.len();
            let bounded = marker == "#" || !marker.is_ascii() || (word_start(at) && word_end(end));
            if !bounded || best.is_some_and(|(b, _, _)| b <= at) {
                continue;
            }
            if let Some((n, _)) = number_at(&lower, end, words) {
                best = Some((at, kind, n));
                break;
            }
        }
    }
    best.map(|(at, kind, n)| (kind, stem(at), n)).or_else(|| cjk_series(&lower))
}

/// A title's template when its numbering uses no marker word: the [`fold`]ed title with its last
/// free-standing number replaced by `#` ("Morning Drive 14" is "morning drive #"), and that
/// number. Needs four letters besides, so a bare date or number is no template.
pub(super) fn template_of(title: &str) -> Option<(String, u32)> {
    let text = fold(title);
    let bytes = text.as_bytes();
    let (mut last, mut i) = (None, 0);
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let free = !text[..start].chars().next_back().is_some_and(char::is_alphabetic)
            && !text[i..].chars().next().is_some_and(char::is_alphabetic);
        if free && i - start <= 6 {
            last = Some((start, i));
        }
    }
    let (start, end) = last?;
    let n = text[start..end].parse().ok()?;
    let template = format!("{}#{}", &text[..start], &text[end..]);
    let template = template.trim_matches(|c: char| !c.is_alphanumeric() && c != '#').to_owned();
    (template.chars().filter(|c| c.is_alphabetic()).count() >= 4).then_some((template, n))
}

/// The series of [`series_of`], else the plain numbering of [`template_of`] (a series of kind
/// "numbered item" whose stem is the template).
pub(super) fn series_or_template(title: &str) -> Option<(SeriesKind, String, u32)> {
    series_of(title).or_else(|| template_of(title).map(|(t, n)| (SeriesKind::Numbered, t, n)))
}

/// A title's counter in any script and numbering style: the word right before its last
/// free-standing number ("Lesson 7", "Kapitel 12", "Ep. 3", "الحلقة 8", "एपिसोड 4", "#41", "Part 3/12"
/// keeps 3) and that number, or the [`series_of`] marker and stem ("Part IV", "第5話", "S02E03").
/// Templates that differ around the counter ("Lesson 7: Greetings", "Lesson 8: Numbers") share
/// the word, so a series keeps one key whatever follows the number.
pub(super) fn counter_of(title: &str) -> Option<(String, u32)> {
    if let Some((kind, stem, n)) = series_of(title) {
        // "S02E03" is episode 3 of its season.
        let n = if kind == SeriesKind::TvEpisode { n % 1000 } else { n };
        return Some((format!("{kind:?}:{stem}"), n));
    }
    let text = fold(title);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut found = None;
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].1.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].1.is_ascii_digit() {
            i += 1;
        }
        let inside_word =
            (start > 0 && chars[start - 1].1.is_alphabetic()) || chars.get(i).is_some_and(|c| c.1.is_alphabetic());
        let fraction_tail = start > 0 && chars[start - 1].1 == '/';
        if !inside_word && !fraction_tail && i - start <= 4 {
            found = Some((start, i));
        }
    }
    let (start, end) = found?;
    let n: u32 = text[chars[start].0..chars.get(end).map_or(text.len(), |c| c.0)].parse().ok()?;
    // The word before the number, across separators: "Ep. 3", "Lesson – 7", "#41".
    let mut j = start;
    while j > 0 && matches!(chars[j - 1].1, ' ' | '#' | '.' | ':' | '-' | '–' | '—' | 'º' | '°') {
        j -= 1;
    }
    let word_end = j;
    while j > 0 && chars[j - 1].1.is_alphabetic() {
        j -= 1;
    }
    let word: String = chars[j..word_end].iter().map(|c| c.1).collect();
    let hash = chars[word_end..start].iter().any(|c| c.1 == '#');
    match (word.chars().count(), hash) {
        (0, true) => Some(("#".into(), n)),
        (0, false) => None,
        _ => Some((word, n)),
    }
}

/// The names in a title a host's app repeats for every item of one show, book or client:
/// "Harbor Town: The Storm" gives "harbor town" and "the storm"; a numbered title gives its stem
/// or template.
pub(super) fn title_names(title: &str) -> Vec<String> {
    let lower = fold(title);
    let mut names: Vec<String> = lower
        .split([':', '|', '(', ')', ',', '—', '–'])
        .flat_map(|s| s.split(" - "))
        .map(|s| s.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
        .filter(|s| s.chars().count() >= 6)
        .collect();
    if let Some((_, stem, _)) = series_or_template(title)
        && stem.chars().count() >= 6
    {
        names.push(stem);
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::super::words::has_word;
    use super::*;

    #[test]
    fn series_are_read_from_titles() {
        let s = series_of;
        assert_eq!(s("Salt and Iron - Chapter 12"), Some((SeriesKind::Chapter, "salt and iron".into(), 12)));
        assert_eq!(s("Harbor Town Season 2 Episode 7"), Some((SeriesKind::TvEpisode, "harbor town".into(), 2007)));
        assert_eq!(s("Harbor Town S02E07"), Some((SeriesKind::TvEpisode, "harbor town".into(), 2007)));
        assert_eq!(s("The Money Hour Ep. 214"), Some((SeriesKind::Episode, "the money hour".into(), 214)));
        assert_eq!(s("MATH 221 Lecture 14"), Some((SeriesKind::Lecture, "math 221".into(), 14)));
        assert_eq!(s("Client file #1234 transcription job"), Some((SeriesKind::Numbered, "client file".into(), 1234)));
        assert_eq!(s("CS101 lecture — week 3"), None, "no number right after the marker");
        assert_eq!(s("Sprint 14 planning"), None);
        assert_eq!(s("Facebook 2 review"), None, "markers are whole words");
        assert!(has_word("two hosts and a guest; podcast episodes", "episode"));
        assert!(!has_word("a classic novel", "class") && !has_word("asynchronous", "sync"));
    }

    #[test]
    fn counters_are_read_in_any_script_and_numbering_style() {
        let c = |t: &str| counter_of(t).map(|(k, n)| (k.rsplit(':').next().unwrap_or_default().to_owned(), n));
        assert_eq!(counter_of("Lesson 7: Greetings").map(|x| x.1), Some(7));
        assert_eq!(counter_of("Lesson 7: Greetings").map(|x| x.0), counter_of("Lesson 8: Numbers").map(|x| x.0));
        assert_eq!(c("الدرس 8: الحروف"), Some(("الدرس".into(), 8)));
        assert_eq!(c("एपिसोड 4"), Some(("एपिसोड".into(), 4)));
        assert_eq!(c("Chamada #41"), Some(("chamada".into(), 41)));
        assert_eq!(counter_of("#41").map(|x| x.1), Some(41));
        assert_eq!(c("Canzoni per bambini 11"), Some(("bambini".into(), 11)));
        assert_eq!(c("Part 3/12"), Some(("".into(), 3)), "the marker's series: part three of twelve");
        assert_eq!(counter_of("第5話").map(|x| x.1), Some(5));
        assert_eq!(counter_of("Meeting about the MP3 files"), None, "a number inside a word");
        assert_eq!(counter_of("2024"), None, "no word before it");
    }

    #[test]
    fn series_are_read_in_many_languages() {
        let s = series_of;
        assert_eq!(s("Capítulo 45: La traición de Ricardo"), Some((SeriesKind::Chapter, String::new(), 45)));
        assert_eq!(s("Der Process – Kapitel 3"), Some((SeriesKind::Chapter, "der process".into(), 3)));
        assert_eq!(s("Chapitre IV : Le départ"), Some((SeriesKind::Chapter, String::new(), 4)));
        assert_eq!(s("Hoofdstuk 7"), Some((SeriesKind::Chapter, String::new(), 7)));
        let episode = |t: &str| series_of(t).map(|(kind, _, n)| (kind, n));
        assert_eq!(episode("الحلقة 8: قطة صغيرة تضيع"), Some((SeriesKind::Episode, 8)));
        assert_eq!(episode("كلمة أخيرة | حلقة 12 كاملة"), Some((SeriesKind::Episode, 12)));
        assert_eq!(episode("حلقة تحفيظ – جزء عم – المجموعة 3"), None, "a study circle, numbered by its group");
        assert_eq!(episode("Aşk-ı Memnu 34. Bölüm"), None, "Turkish puts the number first");
        assert_eq!(episode("Kuruluş Osman Bölüm 12"), Some((SeriesKind::Episode, 12)));
        assert_eq!(episode("Кухня — серия 45"), Some((SeriesKind::Episode, 45)));
        assert_eq!(episode("Ojciec Mateusz odcinek 301"), Some((SeriesKind::Episode, 301)));
        assert_eq!(episode("Τα Μυστικά της Εδέμ - Επεισόδιο 17"), Some((SeriesKind::Episode, 17)));
        assert_eq!(episode("รันนิ่งแมน ตอนที่ 5"), Some((SeriesKind::Episode, 5)));
        assert_eq!(s("Mi podcast - Episodio 12"), Some((SeriesKind::Episode, "mi podcast".into(), 12)));
        assert_eq!(s("Die drei ??? Folge 201"), Some((SeriesKind::Episode, "die drei".into(), 201)));
        assert_eq!(
            s("La casa de papel Temporada 2 Capítulo 5"),
            Some((SeriesKind::TvEpisode, "la casa de papel".into(), 2005))
        );
        assert_eq!(s("Dark Staffel 1, Folge 3"), Some((SeriesKind::TvEpisode, "dark".into(), 1003)));
        assert_eq!(s("Élite T02E03"), Some((SeriesKind::TvEpisode, "elite".into(), 2003)));
        assert_eq!(s("Season Two Episode Three"), Some((SeriesKind::TvEpisode, String::new(), 2003)));
        assert_eq!(s("The Long Walk, Part II"), Some((SeriesKind::Numbered, "the long walk".into(), 2)));
        assert_eq!(s("Part One: Arrival"), Some((SeriesKind::Numbered, String::new(), 1)));
        assert_eq!(
            s("Guided Sleep Meditation – Day 14"),
            Some((SeriesKind::Numbered, "guided sleep meditation".into(), 14))
        );
        assert_eq!(s("Día 14"), Some((SeriesKind::Numbered, String::new(), 14)));
        assert_eq!(s("Lección 5"), Some((SeriesKind::Lecture, String::new(), 5)));
        assert_eq!(s("Módulo 3: Derivadas"), Some((SeriesKind::Lecture, String::new(), 3)));
        assert_eq!(s("進撃の巨人 第3話"), Some((SeriesKind::Episode, "進撃の巨人".into(), 3)));
        assert_eq!(s("三体 第十二章"), Some((SeriesKind::Chapter, "三体".into(), 12)));
        assert_eq!(s("第二十三回 定例"), Some((SeriesKind::Numbered, String::new(), 23)));
        assert_eq!(s("No one came to the meeting"), None, "no written-out numbers after \"no\"");
        assert_eq!(s("Part I think we should cut"), None, "a lone I is a pronoun unless it ends the number");
        assert_eq!(s("Book club: The Salt Road"), None);
        // Numbering without a marker word: the template.
        assert_eq!(template_of("Morning Drive 14"), Some(("morning drive #".into(), 14)));
        assert_eq!(template_of("Sprint 14 planning"), Some(("sprint # planning".into(), 14)));
        assert_eq!(template_of("CS101 notes"), None, "a number inside a word is a name");
        assert_eq!(template_of("2024-05-12"), None, "a bare date is no template");
    }
}
