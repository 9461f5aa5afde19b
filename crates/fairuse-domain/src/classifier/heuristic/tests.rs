//! The heuristic's behaviour on whole inputs: what qualifies, what never does, what is cited.

use std::collections::BTreeSet;

use super::super::test_support::*;
use super::words::{first_person, names_others};
use super::*;
use crate::time::MS_PER_MINUTE;

#[test]
fn sequential_chapters_qualify_and_cite_the_conversations() {
    let convs: Vec<_> = (1..=6).map(|i| conv(i, &format!("Harry Potter - Chapter {i}"), 45, "entertainment")).collect();
    let v = HeuristicClassifier.classify_now(&input(convs, UsageShape::default()));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    assert_eq!(v.usage_type, UsageType::Audiobook);
    assert!(!v.evidence.is_empty() && v.evidence.len() <= MAX_EVIDENCE);
    assert!(v.evidence.iter().all(|e| e.conversation_id.starts_with('c')));
}

#[test]
fn volume_and_shape_alone_never_qualify() {
    let convs: Vec<_> = (1..=30).map(|i| conv(i, "Untitled", 90, "other")).collect();
    let shape = UsageShape {
        speech_ms: i64::MAX / 4,
        active_minutes: 10_080,
        longest_run_minutes: 10_080,
        hours_of_day_active: 24,
        mean_density_ms: 60_000,
    };
    let v = HeuristicClassifier.classify_now(&input(convs, shape));
    assert!(v.misuse_score < 0.7, "{v:?}");
}

#[test]
fn a_day_of_meetings_is_not_misuse() {
    let convs: Vec<_> = (1..=12).map(|i| conv(i, &format!("Team meeting {i}"), 55, "work")).collect();
    let shape = UsageShape {
        speech_ms: 40 * 3_600_000,
        active_minutes: 3000,
        longest_run_minutes: 60,
        hours_of_day_active: 10,
        mean_density_ms: 30_000,
    };
    let v = HeuristicClassifier.classify_now(&input(convs, shape));
    assert!(v.misuse_score < 0.5, "{v:?}");
}

#[test]
fn one_narrated_chapter_and_two_dense_unbroken_hours_qualify() {
    // The first classifier run of an audiobook abuser, about 2 h 20 min after they start.
    let convs = vec![at(1, 0, 48, "Salt and Iron - Chapter 1", "A narrator reads chapter 1; one voice throughout.")];
    let shape = UsageShape {
        speech_ms: 125 * MS_PER_MINUTE,
        active_minutes: 140,
        longest_run_minutes: 140,
        hours_of_day_active: 3,
        mean_density_ms: 53_000,
    };
    let v = HeuristicClassifier.classify_now(&input(convs, shape.clone()));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    assert_eq!(v.usage_type, UsageType::Audiobook);
    assert_eq!(v.evidence.len(), 1);
    assert!(v.evidence[0].reason.contains("narrat"), "{:?}", v.evidence);
    // The same hours at conversational density, without a silent minute, do not.
    let talk = vec![at(1, 0, 140, "Workshop with the design team", "Live workshop; the team sketched flows.")];
    let loose = UsageShape { mean_density_ms: 30_000, ..shape };
    assert!(HeuristicClassifier.classify_now(&input(talk, loose)).misuse_score < 0.3);
}

#[test]
fn chapters_back_to_back_are_cited_as_a_series() {
    let convs: Vec<_> =
        (0..4).map(|i| at(i + 1, i as i64 * 62, 60, &format!("Harbor of Glass, Part {}", i + 3), "")).collect();
    let v = HeuristicClassifier.classify_now(&input(convs.clone(), UsageShape::default()));
    // Numbering with metadata that describes nothing: structure only, which needs content.
    assert_eq!(v.misuse_score, 0.0, "{v:?}");
    let v = HeuristicClassifier.classify_now(&input(convs, max_shape()));
    assert!((v.misuse_score - SHAPE_SCORE_LIMIT).abs() < 1e-9, "numbering and shape alone: {v:?}");
    assert!(v.evidence.is_empty(), "{:?}", v.evidence);
    let named: Vec<_> = (0..4)
        .map(|i| at(i + 1, i as i64 * 62, 60, &format!("The Money Hour Episode {}", i + 40), "Two hosts talk."))
        .collect();
    let v = HeuristicClassifier.classify_now(&input(named, UsageShape::default()));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    assert_eq!(v.usage_type, UsageType::Podcast);
}

#[test]
fn titles_sharing_a_show_name_with_described_media_count_as_media() {
    let convs = vec![
        at(1, 0, 60, "Why rates are not coming down | The Money Hour", ""),
        at(2, 61, 60, "Inside a seed round | The Money Hour", "In this episode the hosts discuss funding."),
        at(3, 122, 60, "Kitchen Wars S02E01", "Several characters talk over music."),
    ];
    let v = HeuristicClassifier.classify_now(&input(convs, UsageShape::default()));
    assert!(v.misuse_score >= 0.55 - 1e-9, "all three are media: {v:?}");
    let reasons: Vec<&str> = v.evidence.iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("same name \"the money hour\" as c2")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("season and episode number")), "{reasons:?}");
    // A name shared with nothing described as media proves nothing.
    let convs = vec![
        at(1, 0, 60, "Weekly sync | Atlas team", "Planning."),
        at(2, 61, 60, "Design review | Atlas team", "Reviewed the onboarding flow."),
    ];
    let v = HeuristicClassifier.classify_now(&input(convs, max_shape()));
    assert!(v.misuse_score <= SHAPE_SCORE_LIMIT && v.evidence.is_empty(), "{v:?}");
}

#[test]
fn a_live_course_with_numbered_lectures_is_not_misuse() {
    // Three courses, lectures two or three times a week, same length each time, a full week of
    // every shape signal the meter can give: still not misuse.
    let mut convs = Vec::new();
    let mut id = 0;
    for day in 0..5i64 {
        for (course, hour, minutes) in [("MATH 221", 9, 50), ("CS 101", 11, 75), ("PHYS 150", 14, 90)] {
            if (day + hour) % 2 == 0 || course == "MATH 221" {
                id += 1;
                let n = 10 + day as usize;
                convs.push(at(
                    id,
                    day * 1440 + hour * 60,
                    minutes,
                    &format!("{course} Lecture {n}"),
                    "Live lecture; the professor took questions from students.",
                ));
            }
        }
        id += 1;
        convs.push(at(id, day * 1440 + 17 * 60, 60, "CS101 lecture — week 3", "Study group before the quiz."));
    }
    let v = HeuristicClassifier.classify_now(&input(convs, max_shape()));
    assert!(v.misuse_score < 0.7, "{v:?}");
}

#[test]
fn a_family_movie_night_in_a_week_of_family_life_is_not_misuse() {
    let mut convs: Vec<_> = (0..60)
        .map(|i| {
            let title = ["Breakfast with the kids", "Homework help", "Dinner together", "Call with grandma"][i % 4];
            at(i + 1, i as i64 * 160, 45, title, "Family conversation at home.")
        })
        .collect();
    convs.push(at(61, 100 * 160, 130, "Family movie night: Galaxy Drift", "The movie playing on the TV."));
    convs.push(at(62, 101 * 160, 25, "Bedtime story: chapter 4", "Dad read chapter 4 to the kids."));
    let v = HeuristicClassifier.classify_now(&input(convs, max_shape()));
    assert!(v.misuse_score < 0.7, "{v:?}");
}

#[test]
fn without_a_conversation_naming_recorded_media_nothing_qualifies() {
    // Numbered, uniform, back to back, all day, around the clock: but nothing in the metadata
    // says it is recorded media, so the score stays below the threshold by construction.
    let titles = ["Untitled part {n}", "Session {n}", "Recording #{n}", "Notes no. {n}", "Lesson {n}"];
    for t in titles {
        let convs: Vec<_> = (0..200)
            .map(|i| at(i + 1, i as i64 * 31, 30, &t.replace("{n}", &(i + 1).to_string()), "Continuous speech."))
            .collect();
        let v = HeuristicClassifier.classify_now(&input(convs, max_shape()));
        assert!(v.misuse_score < 0.7, "{t}: {v:?}");
    }
}

#[test]
fn evidence_cites_only_input_conversations() {
    let convs: Vec<_> = (0..30)
        .map(|i| {
            let title = if i % 3 == 0 { format!("Client file #{} transcription job", 500 + i) } else { "Call".into() };
            at(i + 1, i as i64 * 15, 14, &title, "")
        })
        .collect();
    let ids: BTreeSet<String> = convs.iter().map(|c| c.conversation_id.clone()).collect();
    let v = HeuristicClassifier.classify_now(&input(convs, max_shape()));
    assert!(!v.evidence.is_empty() && v.evidence.len() <= MAX_EVIDENCE);
    assert!(v.evidence.iter().all(|e| ids.contains(&e.conversation_id) && !e.reason.is_empty()), "{v:?}");
}

#[test]
fn playback_shaped_sessions_raise_the_shape_score_and_conversational_ones_do_not() {
    // Four sessions, so no recipe fires either way: only the playback signal differs.
    let score = |sessions: Vec<StreamSession>| {
        HeuristicClassifier.classify_now(&with_sessions(vec![], UsageShape::default(), sessions)).misuse_score
    };
    assert_eq!(score(vec![]), 0.0);
    let talking: Vec<_> = (0..4).map(|i| talk(i, i as i64 * 100, 50)).collect();
    assert_eq!(score(talking), 0.0, "conversational sessions add nothing");
    let played: Vec<_> = (0..4).map(|i| playback(i, i as i64 * 100, 50)).collect();
    assert_eq!(score(played.clone()), PLAYBACK_WEIGHT);
    assert_eq!(score(played[..1].to_vec()), 0.0, "one unbroken session is not a habit");
    // One long stretch in a session that otherwise pauses all the time is conversation.
    let debate: Vec<_> = (0..4).map(|i| stream(i, i as i64 * 100, 50, 25, 400, true)).collect();
    assert_eq!(score(debate), 0.0);

    // Beside conversations: the same direction, by the same amount, and only for playback.
    let convs = vec![
        at(1, 0, 45, "Salt and Iron - Chapter 1", "A narrator reads chapter 1."),
        at(2, 2000, 45, "Call with the bank", "A phone call about a mortgage."),
    ];
    let shape = UsageShape { mean_density_ms: 45_000, ..UsageShape::default() };
    let base = HeuristicClassifier.classify_now(&with_sessions(convs.clone(), shape.clone(), vec![]));
    // Two sessions: with the two conversations, too few for any recipe.
    let sessions: Vec<_> = (0..2).map(|i| playback(i, 500 + i as i64 * 100, 40)).collect();
    let more = HeuristicClassifier.classify_now(&with_sessions(convs.clone(), shape.clone(), sessions));
    assert!((more.misuse_score - base.misuse_score - PLAYBACK_WEIGHT).abs() < 1e-9, "{base:?} {more:?}");
    assert_eq!(more.evidence, base.evidence, "sessions are measured, not cited");
    let sessions: Vec<_> = (0..2).map(|i| talk(i, 500 + i as i64 * 100, 40)).collect();
    let same = HeuristicClassifier.classify_now(&with_sessions(convs, shape, sessions));
    assert_eq!(same, base, "conversational sessions change nothing");
}

#[test]
fn sessions_and_shape_alone_never_qualify() {
    // Every shape signal, every recipe, hundreds of unbroken sessions, and numbered titles
    // that name no media: still below the qualifying score.
    let convs: Vec<_> = (0..20)
        .map(|i| at(i + 1, i as i64 * 31, 30, &format!("Untitled part {}", i + 1), "Continuous speech."))
        .collect();
    let sessions: Vec<_> = (0..300).map(|i| playback(i, 1_000 + i as i64 * 31, 30)).collect();
    let v = HeuristicClassifier.classify_now(&with_sessions(convs, max_shape(), sessions));
    assert!(v.misuse_score < 0.7, "{v:?}");
    assert!(v.evidence.iter().all(|e| e.conversation_id.starts_with('c')), "{v:?}");
}

#[test]
fn recorded_media_in_many_languages_qualifies_and_cites_it() {
    let cases: [(&str, &str, UsageType); 12] = [
        (
            "Capítulo {n}: La traición de Ricardo",
            "Ricardo engaña a Valeria y ella jura vengarse.",
            UsageType::Audiobook,
        ),
        ("Die Vermessung der Welt – Kapitel {n}", "Der Erzähler schildert Humboldts Reise.", UsageType::Audiobook),
        (
            "Elizabeth Rejects Mr. Darcy's Proposal",
            "The narrator recounts how Elizabeth refuses Darcy.",
            UsageType::Audiobook,
        ),
        (
            "Le Monde en Questions – épisode {n}",
            "Dans cet épisode, une historienne raconte Versailles.",
            UsageType::Podcast,
        ),
        (
            "Morning Drive: Traffic, Weather and Listener Calls",
            "The host tells listeners about a crash on the ring road.",
            UsageType::Podcast,
        ),
        ("Sermon: Grace Abounds, part {n}", "The preacher tells the congregation about grace.", UsageType::Prerecorded),
        (
            "Predigt zum Sonntag {n}",
            "Der Pfarrer spricht über Vergebung; eine Predigt ohne Unterbrechung.",
            UsageType::Prerecorded,
        ),
        (
            "Guided Sleep Meditation – Day {n}",
            "A calm voice counts breaths until the track ends.",
            UsageType::Prerecorded,
        ),
        (
            "Second Half Play-by-Play: Rovers vs United",
            "The commentator calls every pass of the second half.",
            UsageType::TvMovie,
        ),
        (
            "Amor Perfeito – Capítulo {n}",
            "A novela continua: Marê descobre o segredo da família.",
            UsageType::Audiobook,
        ),
        ("進撃の巨人 第{n}話", "エレンたちが壁の外へ出る。", UsageType::Podcast),
        (
            "Curso de Python – Módulo {n}",
            "Aula gravada de um curso online sobre listas e dicionários.",
            UsageType::Prerecorded,
        ),
    ];
    for (title, overview, usage_type) in cases {
        let convs = played(title, overview, 16, 55);
        let ids: BTreeSet<String> = convs.iter().map(|c| c.conversation_id.clone()).collect();
        let v = HeuristicClassifier.classify_now(&input(convs, abuser_shape()));
        assert!(v.misuse_score >= 0.7, "{title}: {v:?}");
        assert_eq!(v.usage_type, usage_type, "{title}: {v:?}");
        assert!(v.evidence.iter().all(|e| ids.contains(&e.conversation_id)), "{title}: {v:?}");
        assert!(
            v.evidence.iter().any(|e| e.reason.starts_with("title or overview says")),
            "{title}: a qualifying verdict cites a conversation that describes recorded media: {v:?}"
        );
    }
}

#[test]
fn live_heavy_use_in_many_languages_does_not_qualify() {
    // A week of a therapist, a teacher, a court reporter and a manager in several languages,
    // numbered, uniform, all day, with every shape signal the meter can give, and now and then
    // a telenovela or a film with the family.
    let week: Vec<(&str, &str)> = vec![
        ("Session {n} with client", "Weekly therapy session with a client about anxiety at work."),
        ("Sesión {n} con el cliente", "Sesión de terapia con la clienta; hablamos de su ansiedad."),
        ("Clase {n}", "Clase de matemáticas con los alumnos; preguntas sobre el examen."),
        ("MATH 221 Lecture {n}", "The professor took questions from students about eigenvalues."),
        ("Deposition Day {n}", "Deposition of the witness with both attorneys present."),
        ("Sitzung {n} mit dem Vorstand", "Besprechung mit dem Vorstand über das Budget."),
        ("Réunion hebdomadaire n° {n}", "Réunion d'équipe : les priorités de la semaine."),
        ("Reunião {n} com o cliente", "Reunião com o cliente sobre o contrato."),
        ("Riunione di progetto {n}", "Riunione con il team sul rilascio."),
        ("第{n}回 定例会議", "チームの定例会議。"),
        ("Aula {n} – Turma B", "Aula presencial com os alunos sobre frações."),
        ("Board meeting part {n}", "Board meeting: financials and the hiring plan."),
    ];
    let mut convs = Vec::new();
    for day in 0..7i64 {
        for (slot, (title, overview)) in week.iter().enumerate() {
            let n = (10 + day * 2 + slot as i64 % 2).to_string();
            let id = convs.len() + 1;
            let start = day * 1440 + 7 * 60 + slot as i64 * 61;
            convs.push(at(id, start, 60, &title.replace("{n}", &n), overview));
        }
    }
    let id = convs.len() + 1;
    convs.push(at(
        id,
        3 * 1440 + 20 * 60,
        45,
        "Capítulo 45 de la novela con la abuela",
        "Vimos la telenovela en familia.",
    ));
    convs.push(at(
        id + 1,
        5 * 1440 + 20 * 60,
        120,
        "Noche de película en familia",
        "Vimos una película con los niños.",
    ));
    let v = HeuristicClassifier.classify_now(&input(convs.clone(), max_shape()));
    assert!(v.misuse_score < 0.7, "{v:?}");
    // Each kind alone, too: the whole week of one person.
    for (title, overview) in &week {
        let convs: Vec<_> = (0..40)
            .map(|i| {
                let day = i as i64 / 6;
                let start = day * 1440 + 8 * 60 + (i as i64 % 6) * 61;
                at(i + 1, start, 60, &title.replace("{n}", &(10 + i).to_string()), overview)
            })
            .collect();
        let v = HeuristicClassifier.classify_now(&input(convs, max_shape()));
        assert!(v.misuse_score < 0.7, "{title}: {v:?}");
    }
}

#[test]
fn a_media_category_is_a_cue_beside_the_words_and_only_genres_of_media_are() {
    // One word cue alone is one cue; filed under a genre of media it is two things saying content.
    let one =
        |category: &str| Conversation { category: category.into(), ..at(1, 0, 90, "Evening", "The plot thickens.") };
    let alone = HeuristicClassifier.classify_now(&input(vec![one("other")], UsageShape::default()));
    assert!(alone.misuse_score > 0.0 && alone.misuse_score < 0.7, "one cue: {alone:?}");
    let two_cues = alone.misuse_score + CONTENT_WEIGHT * (CUES - ONE_CUE);
    for genre in ["Entertainment", "news", "Comedy", "documentary", "spiritual"] {
        let v = HeuristicClassifier.classify_now(&input(vec![one(genre)], UsageShape::default()));
        // (and the category's own structure weight); still no verdict without signs of playback.
        assert!(v.misuse_score >= two_cues - 2e-3 && v.misuse_score < 0.7, "{genre}: {v:?}");
        assert!(v.evidence[0].reason.contains(&format!("category {genre:?}")), "{v:?}");
    }
    // What people do with others is no genre: a councillor's, a streamer's, a trainer's day.
    for activity in ["politics", "gaming", "fitness", "work", "education"] {
        let v = HeuristicClassifier.classify_now(&input(vec![one(activity)], UsageShape::default()));
        assert_eq!(v.misuse_score, alone.misuse_score, "{activity}: {v:?}");
    }
    // The words name the usage type when they can; a category that names none leaves it to them.
    let v = HeuristicClassifier.classify_now(&input(vec![one("news")], UsageShape::default()));
    assert_ne!(v.usage_type, UsageType::TvMovie, "news says nothing of the medium: {v:?}");
    // Live words still win over any category: the news filed from the user's own meeting.
    let meeting = Conversation {
        category: "news".into(),
        ..at(2, 200, 90, "Newsroom planning", "I pitched my story to the editor and we agreed on the plot.")
    };
    let v = HeuristicClassifier.classify_now(&input(vec![meeting], UsageShape::default()));
    assert_eq!(v.misuse_score, 0.0, "{v:?}");
}

#[test]
fn a_conversation_only_its_category_calls_media_lends_one_cue_to_its_stream_at_narration_density() {
    // Words the heuristic cannot read, one voice at narration pace, back to back: the first filed
    // under "news", the second under nothing of the kind.
    let item = |i: usize, category: &str| Conversation {
        speaker_count: Some(1),
        word_count: Some(60 * 150),
        category: category.into(),
        ..at(i, (i as i64 - 1) * 61, 60, "ሌሊት", "ረጅም ቅጂ።")
    };
    let stream = vec![item(1, "news"), item(2, "other")];
    let cited =
        |v: &Verdict| v.evidence.iter().any(|e| e.conversation_id == "c2" && e.reason.contains("one stream with c1"));
    let narration = UsageShape { mean_density_ms: 50_000, ..UsageShape::default() };
    let v = HeuristicClassifier.classify_now(&input(stream.clone(), narration.clone()));
    assert!(cited(&v), "{v:?}");
    // What it lends is what it has: one cue (0.45 of each of the two hours), not a stream's 0.6.
    let e = HeuristicClassifier.explain(&input(stream.clone(), narration.clone()));
    let content = e.signals.iter().find(|s| s.name == "content").expect("content");
    assert!(content.detail.starts_with("54 strength-weighted of 120 min"), "{:?}", e.signals);
    // Under narration density the meter hears people talking, and a category lends nothing.
    let v = HeuristicClassifier.classify_now(&input(stream.clone(), UsageShape::default()));
    assert!(!cited(&v), "{v:?}");
    // Nor across a gap: half an hour later it is another stream.
    let mut apart = stream;
    apart[1].started_at = apart[0].finished_at.plus_ms(30 * MS_PER_MINUTE);
    apart[1].finished_at = apart[1].started_at.plus_ms(60 * MS_PER_MINUTE);
    let v = HeuristicClassifier.classify_now(&input(apart, narration));
    assert!(!cited(&v), "{v:?}");
}

#[test]
fn a_qualifying_verdict_needs_the_meter_to_say_a_lot_once_it_measured_minutes() {
    // Four hours of a named broadcast with four-minute breaks, dense: a listener's or a live host's.
    let show: Vec<_> = (0..4)
        .map(|i| {
            at(
                i + 1,
                i as i64 * 64,
                60,
                &format!("Morning call-in, hour {}", i + 1),
                "Radio broadcast: listeners call in.",
            )
        })
        .collect();
    let morning = UsageShape {
        speech_ms: 4 * 60 * 50_000,
        active_minutes: 240,
        longest_run_minutes: 55,
        hours_of_day_active: 4,
        mean_density_ms: 50_000,
    };
    let e = HeuristicClassifier.explain(&input(show.clone(), morning.clone()));
    assert!(e.signals[0].score < METER_SUPPORT, "{:?}", e.signals);
    assert!(e.verdict.misuse_score < 0.7, "a morning's show, however dense: {:?}", e.signals);
    // Two unbroken hours at narration density: the meter says playback, and it qualifies.
    let unbroken = UsageShape { longest_run_minutes: 150, ..morning };
    let v = HeuristicClassifier.classify_now(&input(show.clone(), unbroken));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    // With no minutes measured the meter has no say, and words with structure decide.
    let v = HeuristicClassifier.classify_now(&input(show, UsageShape::default()));
    assert!(v.misuse_score >= 0.7, "{v:?}");
}

#[test]
fn narration_cues_are_silenced_by_live_people() {
    let club = at(1, 0, 90, "Book club", "Book club with friends: we argued about the protagonist and the plot.");
    let story = at(2, 200, 90, "Elizabeth and Darcy", "The protagonist confronts Darcy; the plot thickens.");
    let v = HeuristicClassifier.classify_now(&input(vec![club.clone()], UsageShape::default()));
    assert_eq!(v.misuse_score, 0.0, "{v:?}");
    let v = HeuristicClassifier.classify_now(&input(vec![story], UsageShape::default()));
    assert!(v.misuse_score >= CONTENT_WEIGHT * CUES - 1e-9 && v.misuse_score < 0.7, "two cues: {v:?}");
    assert!(v.evidence[0].reason.contains("protagonist"), "{v:?}");
    // A named medium counts beside live people: a movie watched with friends is a movie.
    let film = at(3, 400, 90, "Movie night with friends", "Watched a film together.");
    let v = HeuristicClassifier.classify_now(&input(vec![club, film], UsageShape::default()));
    assert!(v.evidence.iter().any(|e| e.conversation_id == "c3"), "{v:?}");
}

#[test]
fn continuous_single_voices_alone_never_qualify_and_a_media_category_is_one_cue() {
    let narrated = |i: usize, title: &str, overview: &str| Conversation {
        speaker_count: Some(1),
        word_count: Some(60 * 150),
        category: "other".into(),
        ..at(i, i as i64 * 61, 60, title, overview)
    };
    // A week of titles that say nothing, one voice at narration pace, back to back, with every
    // shape signal: the shape score and nothing more.
    let titles = ["Afternoon", "Evening", "Night", "Morning"];
    let convs: Vec<_> = (0..60).map(|i| narrated(i + 1, titles[i % 4], "")).collect();
    let v = HeuristicClassifier.classify_now(&input(convs.clone(), max_shape()));
    assert!((v.misuse_score - SHAPE_SCORE_LIMIT).abs() < 1e-9, "{v:?}");
    assert!(v.evidence.is_empty(), "{v:?}");
    // Filed by the host under a category of recorded media, in words it cannot read, they say
    // what: one content cue each, cited with the category; under "work" they do not.
    let filed = |category: &str| -> Vec<Conversation> {
        let titles = ["ጠዋት", "ከሰዓት", "ምሽት", "ሌሊት"];
        (0..60)
            .map(|i| Conversation {
                category: category.into(), ..narrated(i + 1, titles[i % 4], "ረጅም ቅጂ።")
            })
            .collect()
    };
    let v = HeuristicClassifier.classify_now(&input(filed("Entertainment"), abuser_shape()));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    assert_eq!(v.usage_type, UsageType::TvMovie);
    assert!(v.evidence.iter().all(|e| e.reason.contains("category \"Entertainment\"")), "{v:?}");
    let v = HeuristicClassifier.classify_now(&input(filed("religion"), abuser_shape()));
    assert_eq!((v.misuse_score >= 0.7, v.usage_type), (true, UsageType::Prerecorded), "{v:?}");
    let v = HeuristicClassifier.classify_now(&input(filed("work"), max_shape()));
    assert!((v.misuse_score - SHAPE_SCORE_LIMIT).abs() < 1e-9, "{v:?}");
    // The category is one cue, not a verdict: without signs of playback it stops under the line.
    let v = HeuristicClassifier.classify_now(&input(filed("entertainment"), UsageShape::default()));
    assert!(v.misuse_score < 0.7, "{v:?}");
    // One in four saying "narrator" makes the stream an audiobook: the others, in continuous
    // speech right after it, are the same stream.
    let mut said: Vec<_> = convs.clone();
    for c in said.iter_mut().step_by(4) {
        c.overview = "The narrator recounts how Elizabeth refuses Darcy.".into();
    }
    let v = HeuristicClassifier.classify_now(&input(said.clone(), abuser_shape()));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    assert_eq!(v.usage_type, UsageType::Audiobook);
    assert!(v.evidence[0].reason.contains("narrator"), "{v:?}");
    // The same stream, cited: a neutral item right after a narrated one; not so half an hour later.
    let pair = |gap: i64| {
        let mut second = narrated(2, "Evening", "");
        second.started_at = said[0].finished_at.plus_ms(gap * MS_PER_MINUTE);
        second.finished_at = second.started_at.plus_ms(60 * MS_PER_MINUTE);
        HeuristicClassifier.classify_now(&input(vec![said[0].clone(), second], UsageShape::default()))
    };
    let v = pair(1);
    assert!(v.evidence.iter().any(|e| e.conversation_id == "c2" && e.reason.contains("one stream")), "{v:?}");
    let v = pair(30);
    assert!(v.evidence.iter().all(|e| e.conversation_id != "c2"), "{v:?}");
    // A lecturer speaks alone at that pace too; a live lecture is no content at all.
    let lecture = Conversation {
        category: "education".into(),
        ..narrated(1, "Lecture", "Live lecture; students asked questions.")
    };
    let v = HeuristicClassifier.classify_now(&input(vec![lecture], UsageShape::default()));
    assert_eq!(v.misuse_score, 0.0, "{v:?}");
}

#[test]
fn shape_and_every_structural_sign_with_a_trace_of_content_never_qualify() {
    let mut convs: Vec<_> = (0..200)
        .map(|i| Conversation {
            speaker_count: Some(1),
            word_count: Some(30 * 160),
            category: "other".into(), // a media category would be content (one cue) on all of them
            ..at(i + 1, i as i64 * 31, 30, &format!("Untitled part {}", i + 1), "")
        })
        .collect();
    let sessions: Vec<_> = (0..300).map(|i| playback(i, 10_000 + i as i64 * 31, 30)).collect();
    let v = HeuristicClassifier.classify_now(&with_sessions(convs.clone(), max_shape(), sessions.clone()));
    assert!((v.misuse_score - SHAPE_SCORE_LIMIT).abs() < 1e-9, "structure without content adds nothing: {v:?}");
    // One conversation a week apart from the stream with a single content cue: structure now
    // counts, at its cap, and still the verdict does not qualify.
    convs.push(at(300, 30 * 24 * 60, 30, "A sermon", "")); // names the medium, far from the rest
    let v = HeuristicClassifier.classify_now(&with_sessions(convs, max_shape(), sessions));
    assert!(v.misuse_score < 0.7, "{v:?}");
    assert!(v.misuse_score > SHAPE_SCORE_LIMIT + STRUCTURE_LIMIT - 1e-9, "structure at its cap: {v:?}");
}

#[test]
fn ticket_numbers_are_no_series_but_advancing_numbers_are() {
    // Thirty support calls a day, each with a ticket number from a shared queue: no series.
    let tickets: Vec<_> = (0..30)
        .map(|i| at(i + 1, i as i64 * 16, 15, &format!("Ticket #{} — login problems", 48_000 + i * 37), ""))
        .collect();
    assert!(binges(&tickets).is_empty());
    // The same day as numbers one to three apart: a series worked through.
    let series: Vec<_> =
        (0..30).map(|i| at(i + 1, i as i64 * 40, 15, &format!("Morning Drive {}", 100 + i * 2), "")).collect();
    let found = binges(&series);
    assert_eq!(found.len(), 1);
    assert!(found[0].per_day >= 3 && found[0].back_to_back == 0, "{}", found[0].per_day);
}

/// `n` items of one title template, `minutes` long, each starting `gap` minutes after the last.
fn numbered(template: &str, first: u32, n: usize, minutes: i64, gap: i64) -> Vec<Conversation> {
    (0..n)
        .map(|i| {
            let title = template.replace("{n}", &(first + i as u32).to_string());
            at(i + 1, i as i64 * (minutes + gap), minutes, &title, "")
        })
        .collect()
}

#[test]
fn counter_templates_are_found_in_many_languages() {
    // A shared template with a counter that advances, whatever the word around it.
    for template in [
        "Folge {n}: Die Reise",
        "Capítulo {n}",
        "Épisode {n} – La suite",
        "Глава {n}",
        "第{n}話",
        "The Daily #{n}",
        "Ep. {n} with the crew",
        "Kapitola {n}",
        "Afsnit {n}",
        "Ders {n}",
    ] {
        let found = binges(&numbered(template, 7, 3, 40, 1));
        assert_eq!(found.len(), 1, "{template}");
        assert_eq!(found[0].back_to_back, 2, "{template}");
    }
    // Roman numerals and season-episode codes advance too.
    let parts: Vec<_> = ["I", "II", "III"]
        .iter()
        .enumerate()
        .map(|(i, r)| at(i + 1, i as i64 * 41, 40, &format!("The Long Walk, Part {r}"), ""))
        .collect();
    assert_eq!(binges(&parts).len(), 1);
    let episodes: Vec<_> = (5..8).map(|e| at(e, (e as i64 - 5) * 41, 40, &format!("Harbor Town S2E{e}"), "")).collect();
    assert_eq!(binges(&episodes).len(), 1);
    // Numbers that do not advance (the same file again, a queue) are no series.
    let same = numbered("Capítulo {n}", 7, 1, 40, 1).into_iter().cycle().take(3).enumerate();
    let same: Vec<_> = same.map(|(i, c)| Conversation { conversation_id: format!("c{i}"), ..c }).collect();
    assert!(binges(&same).is_empty());
}

#[test]
fn a_weekly_meeting_series_is_not_media_on_its_own() {
    // "Weekly sync 12", "13", ...: numbered, back to back, one voice at speed, every shape
    // signal. Without anything that describes content it stays at the shape score.
    let mut convs = numbered("Weekly sync {n}", 12, 30, 55, 2);
    for c in &mut convs {
        c.word_count = Some(55 * 130);
        c.speaker_count = Some(1);
    }
    let v = HeuristicClassifier.classify_now(&input(convs.clone(), max_shape()));
    assert!((v.misuse_score - SHAPE_SCORE_LIMIT).abs() < 1e-9, "{v:?}");
    // Described as what it is, it is live: the score drops under the shape score.
    for c in &mut convs {
        c.overview = "We reviewed the roadmap with the team; next steps for the launch.".into();
    }
    let v = HeuristicClassifier.classify_now(&input(convs, max_shape()));
    assert!(v.misuse_score <= SHAPE_SCORE_LIMIT && v.evidence.is_empty(), "{v:?}");
}

#[test]
fn overviews_that_describe_content_differ_from_overviews_of_ones_own_work() {
    let show = "The host interviews a guest about sleep research; listeners call in with questions.";
    let own = "We recorded episode 12 with our guest; I asked about sleep research and we agreed on the edit.";
    let conv = |overview: &str| Conversation {
        speaker_count: Some(2),
        word_count: Some(70 * 150),
        ..at(1, 0, 70, "Sleep research", overview)
    };
    let shape = UsageShape { mean_density_ms: 50_000, ..UsageShape::default() };
    let media = HeuristicClassifier.classify_now(&input(vec![conv(show)], shape.clone()));
    let work = HeuristicClassifier.classify_now(&input(vec![conv(own)], shape));
    assert!(media.misuse_score >= 0.7, "{media:?}");
    assert_eq!(media.usage_type, UsageType::Podcast);
    assert!(work.misuse_score < 0.5, "the user's own recording session: {work:?}");
    assert!(first_person_of(own) && !first_person_of(show));
    assert!(!first_person_of("Pip is seized in the marshes"), "\"i\" is a word, not the start of \"in\"");
    assert!(first_person_of("Hablamos con el equipo y acordamos los próximos pasos."));
    assert!(first_person_of("Wir haben die Zahlen besprochen."));
    assert!(first_person_of("Мы обсудили план.") && first_person_of("私たちは計画を話し合った。"));
    let told = "Рассказчик описывает, как Раскольников в жаркий день приходит к Алёне Ивановне заложить часы и обдумывает свой план.";
    assert!(!first_person_of(told), "\"мы\" inside a word is not \"we\"");
    // English writes "I" upper case and among its own words; elsewhere "i" and "je" are others.
    assert!(first_person_of("I preached on grace and the choir sang."));
    assert!(first_person_of("J'ai appelé le client et je lui ai envoyé le devis."));
    assert!(!first_person_of("Veðurforsøgnin sigur frá hvassum vindi í nátt."), "Faroese \"í\" is \"in\"");
    assert!(!first_person_of("Il coro canta i salmi e i bambini ascoltano."), "Italian \"i\" is \"the\"");
    assert!(!first_person_of("I det här avsnittet berättar programledaren om stormen."), "Swedish \"I\" is \"in\"");
    assert!(!first_person_of("Vodič objašnjava kako je rukopis spašen."), "Croatian \"je\" is \"is\"");
    assert!(!first_person_of("In deze aflevering hoor je het verhaal van de storm."), "Dutch \"je\" is \"you\"");
}

fn first_person_of(overview: &str) -> bool {
    first_person(&fold(overview), overview)
}

#[test]
fn overviews_that_name_other_people_tell_a_story() {
    assert!(names_others("Pedro Páramo", "Juan Preciado llega a Comala buscando a su padre."));
    assert!(names_others("Fantine vend ses cheveux", "Fantine, sans travail, vend ses cheveux aux Thénardier."));
    assert!(names_others("Левин на сенокосе", "Днём Левин косит траву вместе с Иваном."));
    assert!(!names_others("Follow-up visit", "The doctor and a patient discuss blood pressure."));
    assert!(!names_others("Budget", "Die Familie gibt ein großes Essen im neuen Haus der Firma."), "German nouns");
}

#[test]
fn the_first_judgement_of_a_broadcast_qualifies_and_a_clinic_morning_does_not() {
    // About 2.4 hours in: two long conversations back to back, continuous speech, dense minutes.
    let shape = UsageShape {
        speech_ms: 125 * MS_PER_MINUTE,
        active_minutes: 140,
        longest_run_minutes: 100,
        hours_of_day_active: 3,
        mean_density_ms: 50_000,
    };
    let live = |i: usize, start: i64, minutes: i64, title: &str, overview: &str| Conversation {
        speaker_count: Some(3),
        word_count: Some(minutes as u64 * 160),
        category: "sports".into(),
        ..at(i, start, minutes, title, overview)
    };
    let match_day = vec![
        live(1, 0, 80, "Late Equaliser at the Derby", "A header in stoppage time levels the score; the crowd erupts."),
        live(2, 81, 55, "Sunday Afternoon", ""),
    ];
    let v = HeuristicClassifier.classify_now(&input(match_day, shape.clone()));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    assert_eq!(v.usage_type, UsageType::TvMovie);
    // A physician's morning at the same density of minutes: conversations of their own work.
    let clinic: Vec<_> = (0..8)
        .map(|i| Conversation {
            speaker_count: Some(2),
            word_count: Some(15 * 70),
            category: "health".into(),
            ..at(
                i + 1,
                i as i64 * 18,
                15,
                &format!("Patient visit {}", 12 + i),
                "The doctor and a patient discuss lab results.",
            )
        })
        .collect();
    let v = HeuristicClassifier.classify_now(&input(clinic, shape));
    assert!(v.misuse_score < 0.3, "{v:?}");
}

#[test]
fn a_shift_and_the_start_of_the_next_are_not_a_day_of_conversation_but_fifteen_hours_are() {
    // A 9 h shift from 09:00 and an early one from 05:00 the next day: 13 h of conversation start
    // within one sliding 24 h, with no one streaming.
    let shifts: Vec<_> = (0..9)
        .map(|h| h * 60)
        .chain((0..4).map(|h| (20 + h) * 60))
        .enumerate()
        .map(|(i, start)| at(i + 1, start, 58, "Item", ""))
        .collect();
    let day = |convs: &[Conversation]| {
        let e = HeuristicClassifier.explain(&input(convs.to_vec(), UsageShape::default()));
        e.signals.iter().find(|s| s.name == "day coverage").map(|s| (s.score, s.detail.clone()))
    };
    assert!(super::structure::busiest_day_minutes(&shifts) >= 12.0 * 58.0);
    assert_eq!(day(&shifts).map(|d| d.0), Some(0.0), "{:?}", day(&shifts));
    let stream: Vec<_> = (0..15).map(|h| at(h + 1, h as i64 * 60, 58, "Item", "")).collect();
    assert_eq!(day(&stream).map(|d| d.0), Some(DAY_WEIGHT), "{:?}", day(&stream));
}

#[test]
fn more_than_a_working_day_of_conversation_and_long_chains_are_structure() {
    let day: Vec<_> = (0..16).map(|i| at(i + 1, i as i64 * 60, 58, "Item", "")).collect();
    assert!(super::structure::busiest_day_minutes(&day) >= 16.0 * 58.0 - 1e-9);
    let (chain, minutes) = super::structure::longest_chain(&day, &vec![true; day.len()]);
    assert_eq!(chain.len(), 16);
    assert!((minutes - 16.0 * 58.0).abs() < 1e-9);
    // A gap of ten minutes ends a chain; a live conversation is no link.
    let spaced: Vec<_> = (0..4).map(|i| at(i + 1, i as i64 * 70, 60, "Item", "")).collect();
    assert_eq!(super::structure::longest_chain(&spaced, &[true; 4]).0.len(), 1);
    assert_eq!(super::structure::longest_chain(&day[..4], &[true, true, false, true]).0.len(), 2);
}

#[test]
fn words_alone_without_signs_of_playback_stay_below_the_line() {
    // One conversation that names the medium, dense minutes, nothing else: a live pastor's
    // service or a host's recording reads the same, so it stays just under 0.7.
    let shape = UsageShape { mean_density_ms: 50_000, ..UsageShape::default() };
    let sermon = at(1, 0, 50, "Sunday sermon: grace abounds", "The preacher speaks on grace to the congregation.");
    let v = HeuristicClassifier.classify_now(&input(vec![sermon.clone()], shape.clone()));
    assert!((v.misuse_score - BELOW_QUALIFYING).abs() < 1e-9, "{v:?}");
    // With continuous speech in one stream for hours, it is playback.
    let stream: Vec<_> = (0..3)
        .map(|i| Conversation {
            word_count: Some(50 * 140),
            speaker_count: Some(1),
            ..at(i + 1, i as i64 * 51, 50, "Sunday sermon: grace abounds", "The preacher speaks on grace.")
        })
        .collect();
    let v = HeuristicClassifier.classify_now(&input(stream, shape));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    assert_eq!(v.usage_type, UsageType::Prerecorded);
}

/// A shape at narration density whose meter runs were broken by the silent minute between items.
fn dense_broken_shape() -> UsageShape {
    UsageShape {
        speech_ms: 3 * 60 * 50_000,
        active_minutes: 180,
        longest_run_minutes: 45,
        hours_of_day_active: 3,
        mean_density_ms: 50_000,
    }
}

#[test]
fn numbered_items_played_straight_through_are_content_in_any_script_only_at_narration_density() {
    // Arabic, Hindi and Korean titles: no word the heuristic knows, only the counter advancing
    // across templates, items a minute apart, after one item whose overview describes a cartoon.
    for (a, b) in [("الدرس {n}", "المستوى 2 – الدرس {n}"), ("पाठ {n}", "भाग {n}"), ("강의 {n}", "{n}강 복습 강의 {n}")]
    {
        let mut convs = numbered(a, 7, 2, 30, 1);
        convs.extend(numbered(b, 9, 2, 30, 1).into_iter().enumerate().map(|(i, mut c)| {
            c.conversation_id = format!("c{}", 10 + i);
            c.started_at = c.started_at.plus_ms(62 * MS_PER_MINUTE);
            c.finished_at = c.finished_at.plus_ms(62 * MS_PER_MINUTE);
            c
        }));
        let played = through(&convs);
        assert!(played.iter().all(|p| *p), "{a} / {b}: {played:?}");
        let cited =
            |v: &Explanation| v.verdict.evidence.iter().filter(|e| e.reason.contains("played straight")).count();
        // Numbering alone never makes content.
        let alone = HeuristicClassifier.explain(&input(convs.clone(), dense_broken_shape()));
        assert_eq!(cited(&alone), 0, "{a}");
        assert_eq!(alone.signals.iter().find(|s| s.name == "content").map(|s| s.score), Some(0.0), "{a}");
        let mut with_cartoon = vec![at(99, -31, 30, "Afternoon", "The characters sing a song in the cartoon.")];
        with_cartoon.extend(convs);
        let dense = HeuristicClassifier.explain(&input(with_cartoon.clone(), dense_broken_shape()));
        assert_eq!(cited(&dense), 4, "{a}: {:?}", dense.verdict.evidence);
        // The same titles at a conversation's density describe nothing.
        let live = UsageShape { mean_density_ms: 30_000, ..dense_broken_shape() };
        assert_eq!(cited(&HeuristicClassifier.explain(&input(with_cartoon, live))), 0, "{a}");
    }
    // Classes, calls and visits have people walking between them: five minutes apart is no playback.
    assert!(through(&numbered("Clase {n}", 12, 4, 50, 5)).iter().all(|p| !p));
    // Nor is a number that goes back or jumps far ahead.
    assert!(through(&numbered("Room {n}", 30, 1, 20, 1)).iter().all(|p| !p));
    let mut jumps = numbered("Ticket {n}", 100, 2, 10, 1);
    jumps[1].title = "Ticket 250".into();
    assert!(through(&jumps).iter().all(|p| !p));
}

#[test]
fn items_a_minute_apart_at_narration_density_are_one_long_run_and_spaced_ones_are_not() {
    let shape_of = |items: Vec<Conversation>, shape: &UsageShape| {
        HeuristicClassifier.explain(&input(items, shape.clone())).signals[0].score
    };
    let dense = dense_broken_shape();
    let (run, spaced) = (
        shape_of(numbered("Untitled {n}", 1, 6, 30, 1), &dense),
        shape_of(numbered("Untitled {n}", 1, 6, 30, 5), &dense),
    );
    // Three hours a minute apart: a two-hour run, and a dense one (+0.2); five minutes apart: not.
    assert!(run >= spaced + 0.2 - 1e-9, "{run} vs {spaced}");
    assert!(run <= SHAPE_SCORE_LIMIT);
    // At a conversation's density the meter's broken run stands.
    let talk = UsageShape { mean_density_ms: 30_000, ..dense };
    let (run, spaced) = (
        shape_of(numbered("Untitled {n}", 1, 6, 30, 1), &talk),
        shape_of(numbered("Untitled {n}", 1, 6, 30, 5), &talk),
    );
    assert!((run - spaced).abs() < 1e-9, "{run} vs {spaced}");
}

#[test]
fn several_slow_voices_are_a_meeting_unless_the_meter_says_narration() {
    let mut c = at(1, 0, 40, "Pimpa e il viaggio sulla luna", "");
    c.speaker_count = Some(4);
    c.word_count = Some(40 * 90);
    assert!(read(&c, false, Continuity::No).live, "four voices at 90 words a minute talk with each other");
    assert!(!read(&c, true, Continuity::No).live, "at narration density they are a cast");
}

#[test]
fn without_narration_density_words_and_some_structure_stay_below_the_line() {
    // A live podcast host's day: named episodes recorded back to back, with numbered titles.
    let convs: Vec<_> = (0..6)
        .map(|i| at(i + 1, i as i64 * 70, 60, &format!("Episode {} recording", 20 + i), "The host and a guest talk."))
        .collect();
    let sparse = UsageShape { mean_density_ms: 33_000, longest_run_minutes: 60, ..dense_broken_shape() };
    let e = HeuristicClassifier.explain(&input(convs.clone(), sparse.clone()));
    let support: f64 = e
        .signals
        .iter()
        .filter(|s| !["content", "live"].contains(&s.name) && !s.name.starts_with("structure ("))
        .map(|s| s.score)
        .sum();
    assert!((PLAYBACK_SUPPORT..PLAYBACK_SUPPORT_SPARSE).contains(&support), "{:?}", e.signals);
    assert!(e.verdict.misuse_score < 0.7, "{:?}", e.signals);
    // The same at narration density is playback.
    let dense = UsageShape { mean_density_ms: 50_000, ..sparse };
    assert!(HeuristicClassifier.classify_now(&input(convs, dense)).misuse_score >= 0.7);
}

#[test]
fn clips_played_one_after_another_are_continuous_speech_and_the_people_they_name_are_heard() {
    // A child's tablet: fourteen ten-minute clips a minute apart at a narrator's pace, one titled
    // as a chapter, the others in words the heuristic does not read, each saying who it is for.
    let clips = |gap: i64, words_per_minute: u64, voices: u32| -> Vec<Conversation> {
        (1..=14)
            .map(|i| Conversation {
                word_count: Some(10 * words_per_minute),
                speaker_count: Some(voices),
                ..at(
                    i,
                    (i as i64 - 1) * (10 + gap),
                    10,
                    if i == 1 { "Capítulo 4: los colores" } else { "Mitãme guarã" },
                    "Una presentadora enseña los colores a los niños con una canción.",
                )
            })
            .collect()
    };
    let played = clips(1, 120, 1);
    assert!(continuity_of(&played).iter().all(|c| *c == Continuity::Clip));
    let e = HeuristicClassifier.explain(&input(played.clone(), dense_broken_shape()));
    assert!(e.verdict.misuse_score >= 0.7, "{:?}", e.signals);
    let clip = e.verdict.evidence.iter().find(|e| e.conversation_id == "c2").expect("a clip is cited");
    assert!(clip.reason.contains("continuous speech"), "{clip:?}");
    assert_eq!(e.signals.iter().find(|s| s.name == "live").map(|s| s.score), Some(0.0), "{:?}", e.signals);
    // Five minutes apart they are ten-minute conversations, and "los niños" are in the room.
    let spaced = clips(5, 120, 1);
    assert!(continuity_of(&spaced).iter().all(|c| *c == Continuity::No));
    let e = HeuristicClassifier.explain(&input(spaced, dense_broken_shape()));
    assert!(e.verdict.misuse_score < 0.7, "{:?}", e.signals);
    // Three voices at a conversation's pace are people talking, a minute apart or not; one voice
    // reciting slowly, clip after clip, is a narrator still.
    assert!(continuity_of(&clips(1, 80, 3)).iter().all(|c| *c == Continuity::No));
    assert!(continuity_of(&clips(1, 70, 1)).iter().all(|c| *c == Continuity::Clip));
    // Two items are a pair, not a run of clips.
    assert!(continuity_of(&played[..2]).iter().all(|c| *c == Continuity::No));
    // A speech continuous on its own keeps the people its words name: a coach with students.
    let speech = Conversation {
        word_count: Some(30 * 130),
        speaker_count: Some(2),
        ..at(1, 0, 30, "Practice round", "Students debate the motion while the coach times speeches.")
    };
    assert!(read(&speech, true, Continuity::Own).live);
    assert!(!read(&speech, true, Continuity::Clip).live);
}

/// [`played_through`] with the runs it is given in `explain`.
fn through(convs: &[Conversation]) -> Vec<bool> {
    played_through(convs, &played_runs(convs))
}

/// [`continuity`] with the runs it is given in `explain`.
fn continuity_of(convs: &[Conversation]) -> Vec<Continuity> {
    continuity(convs, &played_runs(convs))
}

/// `n` conversations of `minutes` each, one minute apart, cycling through `(title, overview)`.
fn back_to_back(n: usize, minutes: i64, items: &[(&str, &str)]) -> Vec<Conversation> {
    (0..n)
        .map(|i| at(i + 1, i as i64 * (minutes + 1), minutes, items[i % items.len()].0, items[i % items.len()].1))
        .collect()
}

#[test]
fn a_recorded_voice_looping_adverts_is_playback_and_a_recorded_statement_is_not() {
    let shop = back_to_back(
        8,
        30,
        &[
            ("Weekend specials", "A recorded voice advertises rice and cooking oil, then starts again."),
            ("Tienda", "Una voz grabada anuncia las ofertas de la semana y vuelve a empezar."),
            ("Promosi pulsa", "Iklan dari toko hape manyabuik paket data murah, diulang-ulang."),
            ("Store audio", "The advert for a mattress clearance plays with a jingle underneath."),
        ],
    );
    let v = HeuristicClassifier.classify_now(&input(shop, max_shape()));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    assert_eq!(v.usage_type, UsageType::Prerecorded);
    assert!(v.evidence.iter().any(|e| e.reason.contains("recorded voice")), "{:?}", v.evidence);

    // An adjuster's recorded statements and a marketing team's advert review are work.
    let work = back_to_back(
        8,
        30,
        &[
            ("Recorded statement from driver", "The adjuster takes a recorded statement about the collision."),
            ("Advert review", "We reviewed the new advert and agreed on the jingle with the agency."),
        ],
    );
    let v = HeuristicClassifier.classify_now(&input(work, max_shape()));
    assert!(v.misuse_score < 0.7, "{v:?}");
    assert!(v.evidence.iter().all(|e| !e.reason.contains("recorded")), "{:?}", v.evidence);
}

#[test]
fn a_game_master_narrating_to_players_is_live_and_a_narrator_reading_is_not() {
    let table = back_to_back(
        6,
        60,
        &[(
            "Tavern Brawl and Escape",
            "Friends around a table: the game master narrates a bar fight, the players improvise.",
        )],
    );
    let v = HeuristicClassifier.classify_now(&input(table, max_shape()));
    assert!(v.misuse_score < 0.7, "{v:?}");
    assert!(v.evidence.iter().all(|e| !e.reason.contains("narrat")), "{:?}", v.evidence);
    // Narration without live people is still a cue, and the narrator names the medium.
    let read: Vec<_> = (0..6)
        .map(|i| at(i + 1, i as i64 * 62, 60, &format!("Chapter {}", i + 1), "The narrator reads the chapter."))
        .collect();
    let v = HeuristicClassifier.classify_now(&input(read, max_shape()));
    assert!(v.misuse_score >= 0.7 && v.usage_type == UsageType::Audiobook, "{v:?}");
}

#[test]
fn a_backlog_of_meeting_recordings_is_commercial_transcription_and_the_meetings_themselves_are_not() {
    let meeting = "The finance team reviews energy costs and the warehouse budget for next year.";
    let titles = ["Zoom Recording 12", "Nagranie spotkania 16", "Grabación de reunión 3", "Gravação da reunião 7"];
    let backlog = back_to_back(8, 40, &titles.map(|t| (t, meeting)));
    let v = HeuristicClassifier.classify_now(&input(backlog, max_shape()));
    assert!(v.misuse_score >= 0.7, "{v:?}");
    assert_eq!(v.usage_type, UsageType::Commercial);
    let live = back_to_back(8, 40, &[("Budget meeting", meeting)]);
    assert!(HeuristicClassifier.classify_now(&input(live, max_shape())).misuse_score < 0.7);
}
