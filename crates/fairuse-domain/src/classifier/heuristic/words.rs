//! The words the heuristic reads in conversation metadata, in several languages, and how it
//! reads them: text is [`fold`]ed (lowercase, accents removed) and words match on word boundaries.
//! This file is long because it is mostly data (word lists); the code is the last hundred lines.

use std::collections::BTreeMap;

use super::super::UsageType;

/// How much a media word says on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strength {
    /// Names the medium ("audiobook", "podcast", "sermon", "play-by-play", "telenovela"): counts
    /// even beside live people ("watched a movie with Marco" is a movie).
    Named,
    /// A narration cue that recorded media produce and live talk rarely does ("the protagonist",
    /// "the hosts", "listeners", "on TV"): counts only in a conversation whose metadata describes
    /// no live people (a book club talks about the protagonist too).
    Cue,
}

const AB: UsageType = UsageType::Audiobook;
const PC: UsageType = UsageType::Podcast;
const TV: UsageType = UsageType::TvMovie;
const PR: UsageType = UsageType::Prerecorded;
const CM: UsageType = UsageType::Commercial;
const N: Strength = Strength::Named;
const C: Strength = Strength::Cue;

/// Words and phrases that describe recorded media, in several languages, matched on word
/// boundaries in [`fold`]ed text (lowercase, accents removed: "capítulo" is "capitulo", "Hörbuch"
/// is "horbuch"); a plural or inflection ending `s`, `es`, `n` or `en` may follow. Words in
/// scripts without spaces (Japanese, Chinese) match anywhere.
const MEDIA_WORDS: &[(&str, UsageType, Strength)] = &[
    // Audiobooks: the medium, its narrator and its chapters.
    ("audiobook", AB, N),
    ("audio book", AB, N),
    ("audio-book", AB, N),
    ("audible", AB, N),
    ("audiolibro", AB, N),
    ("audiolivro", AB, N),
    ("livre audio", AB, N),
    ("livres audio", AB, N),
    ("horbuch", AB, N),
    ("hoerbuch", AB, N),
    ("horbucher", AB, N),
    ("luisterboek", AB, N),
    ("narrator", AB, N),
    ("narrated", AB, N),
    // Narrating is also what a live storyteller does (a game master at a table of players, a
    // parent reading aloud): a cue, which live people silence; the narrator names the medium.
    ("narration", AB, C),
    ("narrates", AB, C),
    ("narrador", AB, N),
    ("narradora", AB, N),
    ("narracion", AB, N),
    ("narracao", AB, N),
    ("erzahler", AB, N),
    ("erzaehler", AB, N),
    ("erzahlerin", AB, N),
    ("narrateur", AB, N),
    ("narratrice", AB, N),
    ("narratore", AB, N),
    ("verteller", AB, N),
    ("chapter", AB, N),
    ("capitulo", AB, N),
    ("kapitel", AB, N),
    ("chapitre", AB, N),
    ("capitolo", AB, N),
    ("hoofdstuk", AB, N),
    ("sleep story", AB, N),
    ("オーディオブック", AB, N),
    ("有声书", AB, N),
    ("有聲書", AB, N),
    ("朗読", AB, N),
    // Fiction told rather than lived.
    ("protagonist", AB, C),
    ("protagonista", AB, C),
    ("protagoniste", AB, C),
    ("protagonistin", AB, C),
    ("heroine", AB, C),
    ("main character", AB, C),
    ("storyline", AB, C),
    ("the author", AB, C),
    ("trama", AB, C),
    ("villain", AB, C),
    ("villano", AB, C),
    ("cliffhanger", AB, C),
    // Podcasts and radio.
    ("podcast", PC, N),
    ("podcaster", PC, N),
    ("episode", PC, N),
    ("ep", PC, N),
    ("episodio", PC, N),
    ("aflevering", PC, N),
    ("ad read", PC, N),
    ("sponsored by", PC, N),
    ("co-host", PC, N),
    ("cohost", PC, N),
    ("radio show", PC, N),
    ("radio program", PC, N),
    ("radio programme", PC, N),
    ("radio station", PC, N),
    ("on the radio", PC, N),
    ("talk show", PC, N),
    ("call-in", PC, N),
    ("listener call", PC, N),
    ("radiosendung", PC, N),
    ("horspiel", PC, N),
    ("programa de radio", PC, N),
    ("emision de radio", PC, N),
    ("emission de radio", PC, N),
    ("emission radio", PC, N),
    ("emisora", PC, N),
    ("trasmissione radio", PC, N),
    ("ポッドキャスト", PC, N),
    ("播客", PC, N),
    ("ラジオ", PC, N),
    ("电台", PC, N),
    // Listeners are an audience: only a broadcast has them.
    ("listener", PC, N),
    ("oyente", PC, N),
    ("auditeur", PC, N),
    ("ouvinte", PC, N),
    ("ascoltatori", PC, N),
    ("horer", PC, N),
    ("horerinnen", PC, N),
    ("слушател", PC, C), // also a course's participants
    ("радиослушател", PC, N),
    ("радиоэфир", PC, N),
    ("радиопередач", PC, N),
    ("подкаст", PC, N),
    // "Выпуск" is also a graduation, an issue of bonds, a release: the issue of a show is named.
    ("выпуск", PC, C),
    ("выпуск подкаст", PC, N),
    ("выпуске подкаст", PC, N),
    ("выпуск передачи", TV, N),
    ("выпуске передачи", TV, N),
    ("выпуск новостей", TV, N),
    ("リスナー", PC, N),
    ("番組", PC, N),
    ("放送", TV, N),
    ("news bulletin", PC, N),
    ("newsreader", PC, N),
    ("newscaster", PC, N),
    ("news anchor", PC, N),
    ("boletin informativo", PC, N),
    ("informativo", PC, N),
    ("radiojornal", PC, N),
    ("journal de", PC, C),
    ("flash info", PC, N),
    ("revue de presse", PC, N),
    ("nachrichtensprecher", PC, N),
    ("tagesschau", TV, N),
    ("telegiornale", TV, N),
    ("giornale radio", PC, N),
    ("tertulia", PC, N),
    ("tertulianos", PC, N),
    ("mesa redonda", PC, C),
    ("phone-in", PC, N),
    ("call-in show", PC, N),
    ("hortertelefon", PC, N),
    ("the host", PC, C),
    ("hosted by", PC, C),
    ("presentador", PC, C),
    ("presentadora", PC, C),
    ("locutor", PC, C),
    ("locutora", PC, C),
    // Television, film and sports broadcasts.
    ("netflix", TV, N),
    ("hbo", TV, N),
    ("hulu", TV, N),
    ("disney+", TV, N),
    ("disney plus", TV, N),
    ("prime video", TV, N),
    ("movie", TV, N),
    ("film", TV, N),
    ("filme", TV, N),
    ("pelicula", TV, N),
    ("tv show", TV, N),
    ("tv series", TV, N),
    ("tv-serie", TV, N),
    ("serie de tv", TV, N),
    ("serie tv", TV, N),
    ("serie de television", TV, N),
    ("serie tele", TV, N),
    ("fernsehserie", TV, N),
    ("fernsehsendung", TV, N),
    ("fernsehfilm", TV, N),
    ("web series", TV, N),
    ("sitcom", TV, N),
    ("laugh track", TV, N),
    ("soundtrack", TV, N),
    ("telenovela", TV, N),
    ("soap opera", TV, N),
    ("culebron", TV, N),
    ("dorama", TV, N),
    ("k-drama", TV, N),
    ("kdrama", TV, N),
    ("play-by-play", TV, N),
    ("play by play", TV, N),
    ("commentator", TV, N),
    ("comentarista", TV, N),
    ("commentateur", TV, N),
    ("kommentator", TV, N),
    ("telecronista", TV, N),
    ("sports broadcast", TV, N),
    ("match commentary", TV, N),
    ("live commentary", TV, N),
    ("retransmision", TV, N),
    ("retransmission", TV, N),
    ("transmision del partido", TV, N),
    ("电视剧", TV, N),
    ("电影", TV, N),
    ("映画", TV, N),
    ("ドラマ", TV, N),
    ("on tv", TV, C),
    ("the tv", TV, C),
    ("watching tv", TV, C),
    ("watched tv", TV, C),
    ("tv episode", TV, C),
    ("tv program", TV, C),
    ("tv programme", TV, C),
    ("tv broadcast", TV, C),
    ("television", TV, C),
    ("fernsehen", TV, C),
    ("cartoon", TV, C),
    ("anime", TV, C),
    ("documentary", TV, C),
    ("documental", TV, C),
    ("documentaire", TV, C),
    // A documentary and a cartoon in the languages of the broadcast words (v20): cues, as in
    // English (a class watches one, a teacher shows one).
    ("documentario", TV, C),
    ("dokumentarfilm", TV, C),
    ("dokumentalny", TV, C),
    ("film dokumenter", TV, C),
    ("belgesel", TV, C),
    ("phim tai liệu", TV, C),
    ("документальный фильм", TV, C),
    ("документалк", TV, C),
    ("ντοκιμαντέρ", TV, C),
    ("סרט תיעודי", TV, C),
    ("وثائقي", TV, C),
    ("डॉक्यूमेंट्री", TV, C),
    ("वृत्तचित्र", TV, C),
    ("สารคดี", TV, C),
    ("ドキュメンタリー", TV, C),
    ("纪录片", TV, C),
    ("紀錄片", TV, C),
    ("다큐", TV, C),
    ("cartoons", TV, C),
    ("dibujos animados", TV, C),
    ("desenho animado", TV, C),
    ("desenhos animados", TV, C),
    ("dessin anime", TV, C),
    ("dessins animes", TV, C),
    ("cartoni animati", TV, C),
    ("zeichentrick", TV, C),
    ("zeichentrickfilm", TV, C),
    ("tekenfilm", TV, C),
    ("kreskowka", TV, C),
    ("kreskowki", TV, C),
    ("cizgi film", TV, C),
    ("kartun", TV, C),
    ("hoạt hinh", TV, C),
    ("мультфильм", TV, C),
    ("мультик", TV, C),
    ("мультсериал", TV, C),
    ("رسوم متحركة", TV, C),
    ("أفلام كرتون", TV, C),
    ("افلام كرتون", TV, C),
    ("کارٹون", TV, C),
    ("कार्टून", TV, C),
    ("การ์ตูน", TV, C),
    ("アニメ", TV, C),
    ("动画片", TV, C),
    ("動畫", TV, C),
    ("만화", TV, C),
    ("애니메이션", TV, C),
    // A drama serial and the film industries, as cues: Persian "سریال" is a serial number too,
    // the South Asian TV drama ("ڈرامہ", "ड्रामा") a play on a stage, and a Bollywood dance class
    // is live; only "nollywood" names the films alone. ("сериал" is named elsewhere.)
    ("سریال", TV, C),
    ("ڈرامہ", TV, C),
    ("ड्रामा", TV, C),
    ("নাটক", TV, C),
    ("nollywood", TV, N),
    ("bollywood", TV, C),
    ("novela", TV, C),
    ("characters", TV, C),
    ("broadcast", TV, N),
    ("broadcaster", TV, N),
    ("announcer", TV, N),
    ("sportscaster", TV, N),
    ("pundit", TV, N),
    ("commentary", TV, N),
    ("commentators", TV, N),
    ("kommentatoren", TV, N),
    ("live-kommentar", TV, N),
    ("comentaristas", TV, N),
    ("relator", TV, N),
    ("narradores", TV, N),
    ("transmissao", TV, N),
    ("transmision", TV, N),
    ("telecronaca", TV, N),
    ("радиоспектакль", AB, N),
    ("комментатор", TV, N),
    ("телесериал", TV, N),
    ("сериал", TV, N),
    ("телепередач", TV, N),
    ("фильм", TV, N),
    ("аудиокниг", AB, N),
    ("рассказчик", AB, N),
    ("чтец", AB, C), // a school recitation contest has "чтецы" too
    ("проповедь", PR, N),
    // A doctor recommends meditation: a guided or recorded one is named.
    ("медитаци", PR, C),
    ("аудиомедитаци", PR, N),
    ("медитация для сна", PR, N),
    ("медитацию для сна", PR, N),
    ("медитации для сна", PR, N),
    ("実況", TV, N),
    ("解説者", TV, N),
    ("アニメ", TV, N),
    ("説教", PR, C), // also a scolding
    ("瞑想", PR, C),
    ("誘導瞑想", PR, N),
    ("瞑想音声", PR, N),
    ("ガイド付き瞑想", PR, N),
    ("ナレーター", AB, N),
    // Pre-recorded courses, talks, sermons and guided audio.
    ("recorded lecture", PR, N),
    ("lecture recording", PR, N),
    ("video lecture", PR, N),
    ("played back", PR, N),
    ("youtube", PR, N),
    ("online course", PR, N),
    ("video course", PR, N),
    ("course video", PR, N),
    ("audio course", PR, N),
    ("audio lesson", PR, N),
    ("video tutorial", PR, N),
    ("tutorial video", PR, N),
    ("webinar recording", PR, N),
    ("recorded webinar", PR, N),
    ("curso online", PR, N),
    ("curso en linea", PR, N),
    ("curso grabado", PR, N),
    ("clase grabada", PR, N),
    ("videoclase", PR, N),
    ("curso gravado", PR, N),
    ("aula gravada", PR, N),
    ("videoaula", PR, N),
    ("cours en ligne", PR, N),
    ("cours enregistre", PR, N),
    // A lecture or class that says it is recorded, in the languages whose summaries of recorded
    // courses the lists above did not read (exam-review lectures played one after another).
    // Only the recorded kind: "lecture" or "class" alone is a live teacher's day too.
    ("recorded class", PR, N),
    ("recorded lesson", PR, N),
    ("clases grabadas", PR, N),
    ("aulas gravadas", PR, N),
    ("cours enregistres", PR, N),
    ("aufgezeichnete vorlesung", PR, N),
    ("vorlesungsaufzeichnung", PR, N),
    ("videovorlesung", PR, N),
    ("lezione registrata", PR, N),
    ("lezioni registrate", PR, N),
    ("videolezione", PR, N),
    ("videolezioni", PR, N),
    ("nagrany wyklad", PR, N),
    ("nagranie wykladu", PR, N),
    ("видеолекци", PR, N),
    ("запись лекции", PR, N),
    ("записанная лекция", PR, N),
    ("видеоурок", PR, N),
    // "Kayıtlı ders" and "ders kaydı" are a recorded lecture, and an enrolled course and course
    // registration too: cues.
    ("kayıtlı ders", PR, C),
    ("ders kaydı", PR, C),
    ("kaydedilmiş ders", PR, N),
    ("dersin video kaydı", PR, N),
    ("konu anlatım videosu", PR, N),
    ("محاضرة مسجلة", PR, N),
    ("محاضرات مسجلة", PR, N),
    ("درس مسجل", PR, N),
    ("کلاس ضبط\u{200c}شده", PR, N),
    ("کلاس ضبط شده", PR, N),
    ("درس ضبط\u{200c}شده", PR, N),
    ("रिकॉर्डेड लेक्चर", PR, N),
    ("रिकॉर्डेड क्लास", PR, N),
    ("녹화 강의", PR, N),
    ("녹화강의", PR, N),
    ("동영상 강의", PR, N),
    ("동영상강의", PR, N),
    ("録画講義", PR, N),
    ("収録講義", PR, N),
    ("講義動画", PR, N),
    ("录播", PR, N),
    ("錄播", PR, N),
    ("kuliah rekaman", PR, N),
    ("rekaman kuliah", PR, N),
    ("online-kurs", PR, N),
    ("onlinekurs", PR, N),
    ("videokurs", PR, N),
    ("corso online", PR, N),
    ("ted talk", PR, N),
    ("tedx", PR, N),
    ("masterclass", PR, N),
    ("udemy", PR, N),
    ("coursera", PR, N),
    ("sermon", PR, N),
    ("homily", PR, N),
    ("homilia", PR, N),
    ("predigt", PR, N),
    ("homelie", PR, N),
    ("omelia", PR, N),
    ("predica", PR, N),
    ("preacher", PR, N),
    ("predicador", PR, N),
    ("prediger", PR, N),
    ("predicateur", PR, N),
    ("pregador", PR, N),
    ("congregation", PR, N),
    ("congregacion", PR, N),
    ("guided meditation", PR, N),
    ("guided sleep", PR, N),
    ("sleep meditation", PR, N),
    ("meditacion guiada", PR, N),
    ("meditation guidee", PR, N),
    ("gefuhrte meditation", PR, N),
    ("meditazione guidata", PR, N),
    ("meditacao guiada", PR, N),
    ("sleep sounds", PR, N),
    ("sleep hypnosis", PR, N),
    ("asmr", PR, N),
    // A recorded voice: announcements and adverts played over and over (a shop's loudspeaker).
    // Only the voice, message or announcement itself: "a recorded statement" is an adjuster's.
    ("recorded voice", PR, N),
    ("recorded message", PR, N),
    ("recorded announcement", PR, N),
    ("recorded advert", PR, N),
    ("recorded advertisement", PR, N),
    ("pre-recorded", PR, N),
    ("prerecorded", PR, N),
    ("promo loop", PR, N),
    ("promotional loop", PR, N),
    // A promotional or welcome video and a TV channel are played, whoever made them (a hotel's
    // in-house channel on the room's screen).
    ("promo video", PR, N),
    ("promotional video", PR, N),
    ("welcome video", PR, N),
    ("tv channel", TV, N),
    ("voz grabada", PR, N),
    ("mensaje grabado", PR, N),
    ("anuncio grabado", PR, N),
    ("voz gravada", PR, N),
    ("mensagem gravada", PR, N),
    ("anuncio gravado", PR, N),
    ("voix enregistree", PR, N),
    ("message enregistre", PR, N),
    ("annonce enregistree", PR, N),
    ("voce registrata", PR, N),
    ("messaggio registrato", PR, N),
    ("annuncio registrato", PR, N),
    ("bandansage", PR, N),
    ("aufgezeichnete durchsage", PR, N),
    ("записанное объявление", PR, N),
    ("suara rekaman", PR, N),
    ("iklan yang direkam", PR, N),
    // Played over and over: a recording on repeat or on a loop (a vendor's loudspeaker, a lobby
    // screen), in the languages of v16 too; a recorded voice in Thai, Vietnamese and Chinese
    // ("เสียงอัด", "thu sẵn", "录好的"). A recording alone is not one: voice apps title every new
    // recording "Recording", "Rekaman", "Ghi âm", "录音". Where the phrase is also a figure of
    // speech ("ça tourne en boucle", "in Dauerschleife"), and for adverts, a cue.
    ("played over and over", PR, N),
    ("on repeat", PR, N),
    ("on a loop", PR, N),
    ("on loop", PR, N),
    ("en bucle", PR, N),
    ("em loop", PR, N),
    ("繰り返し再生", PR, N),
    ("ループ再生", PR, N),
    ("循环播放", PR, N),
    ("循環播放", PR, N),
    ("反复播放", PR, N),
    ("反覆播放", PR, N),
    ("录好的", PR, N),
    ("錄好的", PR, N),
    ("반복 재생", PR, N),
    ("반복재생", PR, N),
    ("녹음된 목소리", PR, N),
    ("녹음된 안내", PR, N),
    ("เสียงอัด", PR, N),
    ("เปิดวน", PR, N),
    ("เปิดซ้ำ", PR, N),
    ("thu sẵn", PR, N),
    ("phat đi phat lại", PR, N),
    ("phat lặp lại", PR, N),
    ("diputar berulang", PR, N),
    ("diputar terus", PR, N),
    ("en boucle", PR, C),
    ("in dauerschleife", PR, C),
    ("โฆษณา", PR, C),
    ("quảng cao", PR, C),
    // Adverts and jingles: what a loudspeaker plays; a marketing team talks about them too, so
    // cues, counted only where no live people are described.
    ("advert", PR, C),
    ("advertisement", PR, C),
    ("jingle", PR, C),
    ("ad break", PR, C),
    ("commercial break", PR, C),
    ("publicidad", PR, C),
    ("anuncio publicitario", PR, C),
    ("cuna radial", PR, C),
    ("perifoneo", PR, C),
    ("propaganda", PR, C),
    ("publicite", PR, C),
    ("spot publicitaire", PR, C),
    ("pubblicita", PR, C),
    ("spot pubblicitario", PR, C),
    ("werbung", PR, C),
    ("werbespot", PR, C),
    ("реклам", PR, C),
    ("iklan", PR, C),
    ("広告", PR, C),
    ("广告", PR, C),
    ("광고", PR, C),
    // Other people's recordings transcribed as a job: a backlog of recorded meetings played
    // through, titled by the recorder ("Zoom Recording 12", "Nagranie spotkania 16").
    ("meeting recording", CM, N),
    ("zoom recording", CM, N),
    ("teams recording", CM, N),
    ("recording of the meeting", CM, N),
    ("grabacion de reunion", CM, N),
    ("grabacion de la reunion", CM, N),
    ("gravacao da reuniao", CM, N),
    ("gravacao de reuniao", CM, N),
    ("enregistrement de la reunion", CM, N),
    ("aufzeichnung des meetings", CM, N),
    ("meeting-aufzeichnung", CM, N),
    ("registrazione della riunione", CM, N),
    ("opname vergadering", CM, N),
    ("opname van de vergadering", CM, N),
    ("nagranie spotkania", CM, N),
    ("nagranie z spotkania", CM, N),
    // An event played back afterwards: the replay, archive or catch-up of a webcast, a
    // conference call, a press conference or a shareholders' meeting, and the catch-up services
    // of broadcasters ("見逃し配信", "다시보기", "回放", "rediffusion", "en diferido"). Those who
    // took part live do not title it a replay. "A recording" alone is nothing (voice apps title
    // every new recording so); a webcast, or the audio of something ("の音声"), is a cue.
    ("webcast replay", PR, N),
    ("replay of the webcast", PR, N),
    ("archived webcast", PR, N),
    ("on-demand webcast", PR, N),
    ("webcast recording", PR, N),
    ("conference call replay", PR, N),
    ("earnings call replay", PR, N),
    ("rediffusion", TV, N),
    ("en diferido", TV, N),
    ("aufzeichnung der telefonkonferenz", PR, N),
    ("aufzeichnung der pressekonferenz", PR, N),
    ("aufzeichnung der hauptversammlung", PR, N),
    ("gravacao da teleconferencia", PR, N),
    ("grabacion de la conferencia", PR, N),
    ("enregistrement de la conference", PR, N),
    ("registrazione della conferenza", PR, N),
    ("回放", PR, C), // also a security camera's playback
    ("会议回放", PR, N),
    ("會議回放", PR, N),
    ("发布会回放", PR, N),
    ("見逃し配信", TV, N),
    ("アーカイブ配信", PR, N),
    ("音声配信", PR, N),
    ("다시보기", TV, N),
    ("webcast", PR, C),
    ("の音声", PR, C),
    // Other people's recordings transcribed as a job.
    ("transcription job", CM, N),
    ("client file", CM, N),
    ("transcription order", CM, N),
    ("for transcription", CM, N),
    ("transcribed for", CM, N),
    ("trabajo de transcripcion", CM, N),
    ("para transcripcion", CM, N),
    ("audio file", CM, C),
    ("archivo de audio", CM, C),
    ("fichier audio", CM, C),
    ("audiodatei", CM, C),
    // Replays, reruns and compilations are recordings by definition, but the words also serve
    // live work ("reviewing replays" with a team, "rerun the report"): cues, which live people
    // silence. A compilation or best-of selection in the scripts that have a word only for that
    // names the medium.
    ("replay", PR, C),
    ("rerun", TV, C),
    ("compilation", PC, C),
    ("recopilacion", PC, C),
    ("compilacion", PC, C),
    ("compilacao", PC, C),
    ("合集", PC, C), // also any collection ("资料合集")
    ("视频合集", PC, N),
    ("音频合集", PC, N),
    ("节目合集", PC, N),
    ("傑作選", PC, N),
    ("総集編", TV, N),
    ("精選集", PC, N),
    // The same media in the languages of Asia's largest app markets, written as their
    // summarizers write them (words in scripts without spaces match inside longer words, which
    // is how particles attach to them). What only a recording is (an audiobook, a podcast, a
    // TV serial, a film, dubbing, a rerun) names the medium; what a live person may also be or
    // have (a host, listeners, a sermon, a story read) is a cue. Viewers and audiences are not
    // even cues: a live seller on a livestream chats with hers.
    // Korean.
    ("오디오북", AB, N),
    ("팟캐스트", PC, N),
    ("드라마", TV, N),
    ("영화", TV, N),
    ("예능", TV, N),
    ("재방송", TV, N),
    ("몰아보기", TV, N),
    ("다시듣기", PC, N),
    ("청취자", PC, N),
    ("라디오", PC, C),
    ("방송", TV, C),
    ("진행자", PC, C),
    ("사연", PC, C),
    ("낭독", AB, C),
    ("다큐", TV, C),
    ("애니", TV, C),
    ("설교", PR, C),
    // Chinese (simplified and traditional).
    ("有声小说", AB, N),
    ("有聲小說", AB, N),
    ("电视剧", TV, N),
    ("電視劇", TV, N),
    ("连续剧", TV, N),
    ("連續劇", TV, N),
    ("電影", TV, N),
    ("综艺", TV, N),
    ("綜藝", TV, N),
    ("重播", TV, N),
    ("听众", PC, C),
    ("聽眾", PC, C),
    ("主持人", PC, C),
    ("节目", PC, C),
    ("節目", PC, C),
    ("广播", PC, C),
    ("廣播", PC, C),
    ("评书", AB, C),
    ("評書", AB, C),
    // Thai.
    ("หนังสือเสียง", AB, N),
    ("พอดแคสต์", PC, N),
    ("ภาพยนตร์", TV, N),
    ("พากย์", TV, N),
    ("ถ่ายทอดสด", TV, C), // a live stream, also a live seller's own
    ("ละคร", TV, C),
    ("ซีรีส์", TV, C),
    ("ผู้ฟัง", PC, C),
    ("ดีเจ", PC, C),
    ("วิทยุ", PC, C),
    // Vietnamese (as folded: only the accents of [`fold`] are removed).
    ("sach noi", AB, N),
    ("xem phim", TV, N),
    ("phim bộ", TV, N),
    ("thuyết minh phim", TV, N),
    ("lồng tiếng", TV, N),
    ("phat thanh", PC, N),
    ("thinh giả", PC, C),
    ("người dẫn chương trinh", PC, C),
    ("truyền hinh", TV, C),
    // Indonesian and Malay.
    ("buku audio", AB, N),
    ("siniar", PC, N),
    ("sinetron", TV, N),
    ("penyiar", PC, N),
    ("siaran", TV, C),
    ("pendengar", PC, C),
    ("dongeng", AB, C),
    // Filipino and Cebuano.
    ("teleserye", TV, N),
    ("pelikula", TV, N),
    ("programa sa radyo", PC, N),
    ("radyo", PC, C),
    ("tagapakinig", PC, C),
    ("tigpaminaw", PC, C),
    // Hindi.
    ("ऑडियोबुक", AB, N),
    ("पॉडकास्ट", PC, N),
    ("धारावाहिक", TV, N),
    ("फ़िल्म", TV, N),
    ("फिल्म", TV, N),
    ("एपिसोड", PC, N),
    ("श्रोता", PC, C),
    ("रेडियो", PC, C),
    ("प्रवचन", PR, C),
    // Arabic.
    ("كتاب صوتي", AB, N),
    ("بودكاست", PC, N),
    ("مسلسل", TV, N),
    ("فيلم", TV, N),
    ("مستمع", PC, C),
    ("مذيع", PC, C),
    ("إذاعة", PC, C),
    // Broadcasting and television across more of the world's languages, one concept at a time
    // rather than one round of data at a time: the word for a broadcast or for airing a
    // programme names the medium, as "broadcast" does in English; television, a channel and a
    // programme are cues, as "on TV" is (a TV producer's meeting says "meeting" beside them).
    // Words that also mean something live or everyday are left out: "emisión" (emissions),
    // "Sendung" (a parcel), "kanal" (a canal, a root canal), "sending", "lähetys" (a shipment).
    // Latin scripts, [`fold`]ed.
    ("uitzending", TV, N),
    ("sandning", TV, N),
    ("emisiune", TV, N),
    ("emisiunea", TV, N),
    ("transmisiune", TV, N),
    ("vysilani", TV, N),
    ("kozvetites", TV, N),
    ("audycja", PC, N),
    ("audycji", PC, N),
    ("phat song", TV, N),
    ("ditayangkan", TV, N),
    // A live stream is a live seller's own work too; a match's is named.
    ("canli yayin", TV, C),
    ("canlı yayın", TV, C),
    ("mac canli yayin", TV, N),
    ("mac canlı yayın", TV, N),
    ("transmisja", TV, C),
    ("transmisji", TV, C),
    ("trasmissione", TV, C),
    ("tayangan", TV, C),
    ("matangazo", PC, C),
    ("tv", TV, C),
    ("televisao", TV, C),
    ("televisione", TV, C),
    ("telewizja", TV, C),
    ("telewizji", TV, C),
    ("televize", TV, C),
    ("televizi", TV, C),
    ("televiziune", TV, C),
    ("televisie", TV, C),
    ("televisjon", TV, C),
    ("televisio", TV, C),
    ("televizio", TV, C),
    ("televizyon", TV, C),
    ("televisheni", TV, C),
    ("televisyon", TV, C),
    ("televisi", TV, C),
    ("kenh", TV, C),
    ("redio", PC, C),
    ("yayın", TV, C),
    // Cyrillic, Greek, Hebrew, Arabic script, the scripts of India, Thai, Ethiopic, Georgian,
    // Armenian, Chinese, Japanese and Korean: these match inside longer words, which is how
    // their cases, articles and particles attach ("на телеканале", "השידור", "القناة").
    // Also a live stream, "трансляция опыта" (sharing experience) and address translation.
    ("трансляци", TV, C),
    ("телетрансляци", TV, N),
    ("трансляция матча", TV, N),
    ("трансляцию матча", TV, N),
    ("трансляции матча", TV, N),
    ("телеканал", TV, N),
    ("телепрограм", TV, N),
    // Greek "εκπομπή" is a broadcast or a show, and an emission too ("εκπομπές ρύπων", "τομογραφία
    // εκπομπής ποζιτρονίων"): a cue, named as a TV or radio show.
    ("εκπομπή", TV, C),
    ("εκπομπής", TV, C),
    ("εκπομπη", TV, C),
    ("τηλεοπτική εκπομπή", TV, N),
    ("τηλεοπτικής εκπομπής", TV, N),
    ("ραδιοφωνική εκπομπή", TV, N),
    ("ραδιοφωνικής εκπομπής", TV, N),
    ("εκπομπές", TV, C),
    ("εκπομπες", TV, C),
    ("εκπομπών", TV, C),
    ("εκπομπων", TV, C),
    ("שידור", TV, C), // also a transmission of data
    ("שידור חוזר", TV, N),
    ("השידור החוזר", TV, N),
    ("प्रसारण", TV, N),
    ("प्रसारित", TV, C), // also a circular issued
    ("प्रसारित हो रह", TV, N),
    ("टीवी पर प्रसारित", TV, N),
    ("সম্প্রচার", TV, N),
    ("ஒளிபரப்பு", TV, N),
    ("ప్రసార", TV, N),
    ("സംപ്രേഷണ", TV, N),
    ("ออกอากาศ", TV, N),
    ("ስርጭት", TV, C), // also the spread of a disease, a distribution
    ("የቴሌቪዥን ስርጭት", TV, N),
    ("የሬዲዮ ስርጭት", TV, N),
    ("გადაცემ", TV, C), // also a transfer, a gearbox
    ("ტელეგადაცემ", TV, N),
    ("რადიოგადაცემ", TV, N),
    ("სატელევიზიო გადაცემ", TV, N),
    ("հաղորդում", TV, C), // also a report to the police, a nerve conduction
    ("հեռուստահաղորդ", TV, N),
    ("ռադիոհաղորդում", TV, N),
    ("ռադիոհաղորդման", TV, N),
    ("播出", TV, N),
    ("放映", TV, N),
    ("방영", TV, N),
    ("телевиз", TV, C),
    ("телевіз", TV, C),
    ("телебачен", TV, C),
    ("τηλεόραση", TV, C),
    ("κανάλι", TV, C),
    ("טלוויזיה", TV, C),
    ("ערוץ", TV, C),
    ("רדיו", PC, C),
    ("تلفزيون", TV, C),
    ("تلویزیون", TV, C),
    ("قناة", TV, C),
    ("راديو", PC, C),
    ("رادیو", PC, C),
    ("ٹی وی", TV, C),
    ("टीवी", TV, C),
    ("चैनल", TV, C),
    ("টিভি", TV, C),
    ("চ্যানেল", TV, C),
    ("রেডিও", PC, C),
    ("தொலைக்காட்சி", TV, C),
    ("வானொலி", PC, C),
    ("ทีวี", TV, C),
    ("โทรทัศน์", TV, C),
    ("ቴሌቪዥን", TV, C),
    ("ሬዲዮ", PC, C),
    ("ტელევიზი", TV, C),
    ("რადიო", PC, C),
    ("հեռուստա", TV, C),
    ("ռադիո", PC, C),
    ("テレビ", TV, C),
    ("チャンネル", TV, C),
    ("채널", TV, C),
    ("텔레비전", TV, C),
    ("电视", TV, C),
    ("電視", TV, C),
    ("频道", TV, C),
    ("頻道", TV, C),
    // A video: what a screen plays, in the word most languages borrowed (and in their scripts).
    // Video calls and visits are live (`PERSONAL_WORDS`), and people who make or review videos
    // describe themselves or the people with them, so a cue, never a name.
    ("video", PR, C),
    ("videoklip", PR, C),
    ("videoclip", PR, C),
    ("videosu", PR, C),
    ("videolar", PR, C),
    ("videot", PR, C),
    ("videa", PR, C),
    ("wideo", PR, C),
    ("filmpje", PR, C),
    ("vidio", PR, C),
    ("bidyo", PR, C),
    ("bidiyo", PR, C),
    ("bidiyoyin", PR, C),
    ("ividiyo", PR, C),
    ("amavidiyo", PR, C),
    ("видео", PR, C),
    ("відео", PR, C),
    ("βίντεο", PR, C),
    ("וידאו", PR, C),
    ("סרטון", PR, C),
    ("فيديو", PR, C),
    ("ویدیو", PR, C),
    ("ویدئو", PR, C),
    ("ویڈیو", PR, C),
    ("वीडियो", PR, C),
    ("व्हिडिओ", PR, C),
    ("भिडियो", PR, C),
    ("વિડિયો", PR, C),
    ("વીડિયો", PR, C),
    ("ਵੀਡੀਓ", PR, C),
    ("ଭିଡିଓ", PR, C),
    ("වීඩියෝ", PR, C),
    ("ভিডিও", PR, C),
    ("வீடியோ", PR, C),
    ("వీడియో", PR, C),
    ("വീഡിയോ", PR, C),
    ("ವೀಡಿಯೊ", PR, C),
    ("วิดีโอ", PR, C),
    ("វីដេអូ", PR, C),
    ("ວິດີໂອ", PR, C),
    ("ဗီဒီယို", PR, C),
    ("ቪዲዮ", PR, C),
    ("ვიდეო", PR, C),
    ("վիդեո", PR, C),
    ("տեսանյութ", PR, C),
    ("ビデオ", PR, C),
    ("動画", PR, C),
    ("视频", PR, C),
    ("視頻", PR, C),
    ("影片", PR, C),
    ("비디오", PR, C),
    ("영상", PR, C),
    // The same concepts as English's, in the languages and scripts where only some were read:
    // an episode, a podcast, a narrator, a sermon, the news, a webinar, and the streaming
    // services people leave playing. Left out as the vocabulary of people who make media: a live
    // stream (a live seller's "直播", "прямой эфир", "ao vivo"), a vlog, a YouTuber, narration
    // ("ナレーション収録" is a creator recording a voice-over). Where the word is also an everyday one,
    // a cue: an "episode" of a crime in Russian law, an anecdote in Japanese and Korean, "part"
    // in Persian and "fate" in Urdu ("قسمت"), a hadith's narrator in Arabic and the night prayers
    // "تراویح" around Persian "راوی", an engagement ("خطبة") and a wedding's "خطبه عقد", a relay
    // point in Japanese logistics and a Seoul district ("중계동"), a TikTok or Douyin shop. Left
    // out: "berita" ("berita acara" is a meeting's minutes), "kajian" (a literature review),
    // "twitch" (a muscle's), "highlights" (a meeting summary's heading), "讲道" (inside
    // "讲道理", to reason with someone).
    ("এপিসোড", PC, N),
    ("epizod", PC, C),
    ("epizoda", PC, C),
    ("эпизод", PC, C),
    ("エピソード", PC, C),
    ("에피소드", PC, C),
    ("قسمت", PC, C),
    ("حلقه", PC, C),
    ("podkast", PC, N),
    ("پادکست", PC, N),
    ("پوڈکاسٹ", PC, N),
    ("راوی", AB, C),
    ("الراوي", AB, C),
    ("ナレーター", AB, N),
    ("khutbah", PR, N),
    ("khutba", PR, N),
    ("khotbah", PR, N),
    ("خطبة الجمعة", PR, N),
    ("خطبة", PR, C),
    ("خطبه", PR, C),
    ("เทศน์", PR, C), // also a scolding
    ("ceramah", PR, C),
    ("telejornal", TV, N),
    ("telediario", TV, N),
    ("noticiero", TV, N),
    ("noticiario", TV, N),
    ("journal televise", TV, N),
    ("nieuws", PC, C),
    ("tin tức", PC, C),
    ("أخبار", PC, C),
    ("اخبار", PC, C),
    ("समाचार", PC, C),
    ("新闻", PC, C),
    ("新聞", PC, C),
    ("뉴스", PC, C),
    ("ข่าว", PC, C),
    ("중계", TV, C),
    ("中継", TV, C),
    ("melhores momentos", TV, C),
    ("webinar", PR, C),
    ("вебинар", PR, C),
    ("ウェビナー", PR, C),
    ("웨비나", PR, C),
    ("bilibili", TV, N),
    ("douyin", PR, C),
    ("tiktok", PR, C),
    ("iqiyi", TV, N),
    ("youku", TV, N),
    ("hotstar", TV, N),
    ("zee5", TV, N),
    ("jiocinema", TV, N),
    ("showmax", TV, N),
    ("globoplay", TV, N),
    ("crunchyroll", TV, N),
    ("storytel", AB, N),
    ("bookbeat", AB, N),
    ("spotify", PC, C),
];

/// When a conversation names several media types, the most specific wins ("episode" is generic).
const SPECIFICITY: [UsageType; 5] =
    [UsageType::Commercial, UsageType::Prerecorded, UsageType::TvMovie, UsageType::Audiobook, UsageType::Podcast];

/// Words that describe live people talking, what the product is for, in several languages
/// ([`fold`]ed, matched like [`MEDIA_WORDS`]). Only counted in conversations that do not also
/// name recorded media; they also silence the weaker media cues of the same conversation.
const PERSONAL_WORDS: &[&str] = &[
    // English.
    "meeting",
    "standup",
    "stand-up",
    "1:1",
    "one-on-one",
    "call with",
    "phone call",
    "video call",
    // A call by video in the languages whose word for a video is a cue.
    "video visit",
    "videochamada",
    "chamada de video",
    "appel video",
    "visioconference",
    "videochiamata",
    "videobellen",
    "videogesprek",
    "videosamtal",
    "rozmowa wideo",
    "videohovor",
    "videohivas",
    "videokonferenz",
    "videoconferencia",
    "video goruşme",
    "panggilan video",
    "cuộc gọi video",
    "видеозвон",
    "видеосвяз",
    "видеоконференц",
    "відеодзвін",
    "ビデオ通話",
    "视频通话",
    "視訊",
    "视频会议",
    "영상통화",
    "화상통화",
    "화상회의",
    "화상 회의",
    "화상상담",
    "वीडियो कॉल",
    "ভিডিও কল",
    "مكالمة فيديو",
    "تماس تصویری",
    "שיחת וידאו",
    "conference call",
    "sync",
    "catch-up",
    "catch up",
    "dinner",
    "lunch",
    "breakfast",
    "friend",
    "colleague",
    "doctor",
    "appointment",
    "class",
    "classroom",
    "office hours",
    "study group",
    "in person",
    "in-person",
    "students",
    "pupils",
    "handover",
    "patient",
    "kids",
    "with client",
    "with a client",
    "with my client",
    "client session",
    "therapy",
    "counseling",
    "counselling",
    "coaching",
    "tutoring",
    "rehearsal",
    "practice",
    "workshop",
    "seminar",
    "deposition",
    "consultation",
    // Spanish.
    "reunion",
    "junta",
    "llamada",
    "videollamada",
    "clase",
    "sesion",
    "consulta",
    "paciente",
    "terapia",
    "ninos",
    "hijos",
    "almuerzo",
    "desayuno",
    "alumnos",
    "estudiantes",
    "tutoria",
    "ensayo",
    "declaracion",
    "con el cliente",
    "con la clienta",
    "con cliente",
    "en persona",
    "companeros",
    // Portuguese.
    "reuniao",
    "chamada",
    "ligacao",
    "aula",
    "sessao",
    "com o cliente",
    "criancas",
    "filhos",
    "jantar",
    "almoco",
    "alunos",
    "estudantes",
    // German.
    "besprechung",
    "sitzung",
    "termin",
    "telefonat",
    "anruf",
    "videoanruf",
    "unterricht",
    "vorlesung",
    "klient",
    "mandant",
    "therapie",
    "kinder",
    "abendessen",
    "mittagessen",
    "fruhstuck",
    "schuler",
    "studenten",
    "kollegen",
    // French.
    "appel",
    "visio",
    "rendez-vous",
    "le cours",
    "un cours",
    "classe",
    "avec le client",
    "avec un client",
    "enfants",
    "diner",
    "dejeuner",
    "eleves",
    "etudiants",
    "seance",
    "seminaire",
    "atelier",
    "collegues",
    // Italian and Dutch.
    "riunione",
    "chiamata",
    "telefonata",
    "paziente",
    "bambini",
    "pranzo",
    "studenti",
    "vergadering",
    "overleg",
    "gesprek",
    "klant",
    "kinderen",
    // Japanese and Chinese.
    "会議",
    "打ち合わせ",
    "ミーティング",
    "授業",
    "電話",
    "面談",
    "診察",
    "家族",
    "会议",
    "开会",
    "上课",
    "电话",
    "面试",
    "家人",
];

/// Words that describe *content* rather than what the user did: a story told (characters, a
/// plot, a passage read), a broadcast (presenters, guests, headlines, the studio), a match being
/// called (goals, penalties, the crowd) or a service or guided session (scripture, prayer,
/// breathing). One alone proves little ("the final goal of the project"), so each is a cue: two
/// different cues in a conversation that describes no live people are a description of media.
/// [`fold`]ed, matched like [`MEDIA_WORDS`].
pub(super) const CONTENT_CUES: &[(&str, UsageType)] = &[
    // A story: told, read, with characters.
    ("story", AB),
    ("tale", AB),
    ("novel", AB),
    ("plot", AB),
    ("reads", AB),
    ("reading of", AB),
    ("passage", AB),
    ("recounts", AB),
    ("character", AB),
    ("hero", AB),
    ("adventure", AB),
    ("the book", AB),
    ("el autor", AB),
    ("la autora", AB),
    ("el libro", AB),
    ("l'auteur", AB),
    ("le livre", AB),
    ("der autor", AB),
    ("die autorin", AB),
    ("das buch", AB),
    ("o autor", AB),
    ("a autora", AB),
    ("o livro", AB),
    ("l'autore", AB),
    ("il libro", AB),
    ("автор", AB),
    ("книг", AB),
    ("historia", AB),
    ("relato", AB),
    ("relata", AB),
    ("cuento", AB),
    ("personaje", AB),
    ("recit", AB),
    ("raconte", AB),
    ("histoire", AB),
    ("personnage", AB),
    ("roman", AB),
    ("geschichte", AB),
    ("erzahlt", AB),
    ("erzahlung", AB),
    ("schildert", AB),
    ("lesung", AB),
    ("liest", AB),
    ("storia", AB),
    ("racconta", AB),
    ("racconto", AB),
    ("romanzo", AB),
    ("personaggio", AB),
    ("livro", AB),
    ("conto", AB),
    ("personagem", AB),
    ("narra", AB),
    ("повест", AB),
    ("роман", AB),
    ("герой", AB),
    ("рассказ", AB),
    ("物語", AB),
    ("小説", AB),
    ("主人公", AB),
    // A broadcast: who speaks on it and what it carries.
    ("host", PC),
    ("hosts", PC),
    ("presenter", PC),
    ("anchor", PC),
    ("reporter", PC),
    ("correspondent", PC),
    ("columnist", PC),
    ("panel", PC),
    ("guest", PC),
    ("caller", PC),
    ("studio", PC),
    ("headlines", PC),
    ("bulletin", PC),
    ("weather", PC),
    ("traffic", PC),
    ("the programme", PC),
    ("the program", PC),
    ("the show", PC),
    ("segment", PC),
    ("interviewed", PC),
    ("debate", PC),
    ("moderator", PC),
    ("moderador", PC),
    ("anrufer", PC),
    ("zuhorer", PC),
    ("meldungen", PC),
    ("nachrichten", PC),
    ("programa", PC),
    ("invitado", PC),
    ("periodista", PC),
    ("noticias", PC),
    ("titulares", PC),
    ("presentateur", PC),
    ("animateur", PC),
    ("chroniqueur", PC),
    ("journaliste", PC),
    ("emission", PC),
    ("meteo", PC),
    ("titres", PC),
    ("apresentador", PC),
    ("convidado", PC),
    ("jornalista", PC),
    ("reporteres", PC),
    ("conduttore", PC),
    ("ospite", PC),
    ("notizie", PC),
    ("ведущ", PC),
    ("гост", PC),
    ("новост", PC),
    ("эфир", PC),
    ("ニュース", PC),
    ("司会", PC),
    ("ゲスト", PC),
    // A match being called.
    ("match", TV),
    ("goal", TV),
    ("penalty", TV),
    ("stoppage time", TV),
    ("overtime", TV),
    ("inning", TV),
    ("tie-break", TV),
    ("lap", TV),
    ("league", TV),
    ("derby", TV),
    ("tournament", TV),
    ("fans", TV),
    ("crowd", TV),
    ("stadium", TV),
    ("referee", TV),
    ("kick-off", TV),
    ("halftime", TV),
    ("half-time", TV),
    ("second half", TV),
    ("first half", TV),
    ("pit stop", TV),
    ("touchdown", TV),
    ("field goal", TV),
    ("three-pointer", TV),
    ("wicket", TV),
    ("batting", TV),
    ("leaderboard", TV),
    ("partido", TV),
    ("gol", TV),
    ("goles", TV),
    ("jornada", TV),
    ("liga", TV),
    ("arbitro", TV),
    ("arbitral", TV),
    ("estadio", TV),
    ("jogo", TV),
    ("rodada", TV),
    ("torcida", TV),
    ("campeonato", TV),
    ("spiel", TV),
    ("tore", TV),
    ("spieltag", TV),
    ("elfmeter", TV),
    ("schiedsrichter", TV),
    ("abpfiff", TV),
    ("halbzeit", TV),
    ("stadion", TV),
    ("buts", TV),
    ("mi-temps", TV),
    ("arbitre", TV),
    ("partita", TV),
    ("rigore", TV),
    ("campionato", TV),
    ("матч", TV),
    ("тайм", TV),
    ("試合", TV),
    ("ゴール", TV),
    // A service or a guided session.
    ("scripture", PR),
    ("gospel", PR),
    ("bible", PR),
    ("prayer", PR),
    ("worship", PR),
    ("evangelio", PR),
    ("biblia", PR),
    ("oracion", PR),
    ("evangelho", PR),
    ("oracao", PR),
    ("evangile", PR),
    ("priere", PR),
    ("evangelium", PR),
    ("gebet", PR),
    ("vangelo", PR),
    ("preghiera", PR),
    ("breathing", PR),
    ("breath", PR),
    ("relax", PR),
    ("body scan", PR),
    ("inhale", PR),
    ("exhale", PR),
    ("respiracion", PR),
    ("respiracao", PR),
    ("respiration", PR),
    ("atem", PR),
    ("entspannung", PR),
    ("respiro", PR),
    // Delivery that only a recording keeps up: one voice, no pause, for the whole item.
    ("one speaker", PR),
    ("a single speaker", PR),
    ("one voice", PR),
    ("a single voice", PR),
    ("single narrator", PR),
    ("without pauses", PR),
    ("without interruption", PR),
    ("uninterrupted", PR),
    ("ohne unterbrechung", PR),
    ("sin pausas", PR),
    ("sin interrupcion", PR),
    ("un solo narrador", PR),
    ("sans interruption", PR),
    ("une seule voix", PR),
    ("sem pausas", PR),
    ("sem interrupcao", PR),
    ("senza interruzioni", PR),
    ("без перерыв", PR),
];

/// Words in an overview that say the user took part: first person ("we agreed", "I asked",
/// "nuestro equipo", "wir haben", "j'ai") and the outcomes of work ("next steps", "action items").
/// A summary of recorded media tells what happened in it; a summary of one's own day says who
/// did what. Only the overview is read for these: titles ("Part I") are not sentences.
pub(super) const FIRST_PERSON: &[&str] = &[
    "we",
    "our",
    "my",
    "i'm",
    "i've",
    "we've",
    "we're",
    "nosotros",
    "hablamos",
    "acordamos",
    "revisamos",
    "nuestro",
    "nuestra",
    "conversamos",
    "combinamos",
    "nossa",
    "nosso",
    "minha",
    "meu",
    "nous",
    "notre",
    "j'ai",
    "wir",
    "ich",
    "unser",
    "unsere",
    "mein",
    "meine",
    "noi",
    "abbiamo",
    "nostro",
    "nostra",
    "мы",
    "наш",
    "私",
    "僕",
    "我々",
    "action items",
    "next steps",
    "follow-up",
    "follow up",
    "followed up",
    "agreed",
    "deadline",
    "to-do",
    "proximos pasos",
    "proximos passos",
    "prochaines etapes",
    "nachste schritte",
    "prossimi passi",
    "customer",
    "atendente",
    "atendimento",
    "kunde",
    "kundin",
];

/// An overview names at least two people or places: capitalised words that do not open a
/// sentence ("Juan Preciado llega a Comala"), or that open it and recur in the title ("Fantine
/// vend ses cheveux" / "Fantine, sans travail, ..."). It tells of others, as a story or a
/// broadcast does. Not read in German, which capitalises every noun, nor in scripts without
/// capitals.
pub(super) fn names_others(title: &str, overview: &str) -> bool {
    let lower = fold(overview);
    let german =
        ["der", "die", "und", "das", "mit", "eine", "nicht", "sich"].iter().filter(|w| has_word(&lower, w)).count()
            >= 2;
    if german {
        return false;
    }
    let in_title: Vec<&str> = title.split(|c: char| !c.is_alphanumeric()).collect();
    let mut names = BTreeMap::new();
    let mut sentence_start = true;
    for token in overview.split_whitespace() {
        let word = token.trim_matches(|c: char| !c.is_alphanumeric());
        let capital = word.chars().count() >= 3 && word.chars().next().is_some_and(char::is_uppercase);
        if capital && (!sentence_start || in_title.contains(&word)) {
            names.insert(word, ());
        }
        if !word.is_empty() {
            sentence_start = token.ends_with(['.', '!', '?', ':', ';']);
        }
    }
    names.len() >= 2
}

/// Categories host apps give recorded media, with the usage type each points at: genres of what
/// people watch and listen to, not activities they do with others ("politics", "gaming", "fitness"
/// and "work" are a councillor's, a streamer's, a trainer's day too). The host's own category is
/// metadata that describes content: it counts as one content cue beside the conversation's words,
/// and it still needs signs of playback beside it to qualify.
const MEDIA_CATEGORY_TYPES: &[(&str, UsageType)] = &[
    ("entertainment", UsageType::TvMovie),
    ("entretenimiento", UsageType::TvMovie),
    ("entretenimento", UsageType::TvMovie),
    ("unterhaltung", UsageType::TvMovie),
    ("divertissement", UsageType::TvMovie),
    ("intrattenimento", UsageType::TvMovie),
    ("religion", UsageType::Prerecorded),
    ("religious", UsageType::Prerecorded),
    ("spirituality", UsageType::Prerecorded),
    ("faith", UsageType::Prerecorded),
    ("sports", UsageType::TvMovie),
    ("sport", UsageType::TvMovie),
    ("deportes", UsageType::TvMovie),
    ("esportes", UsageType::TvMovie),
    ("audiobook", UsageType::Audiobook),
    ("audiobooks", UsageType::Audiobook),
    ("podcast", UsageType::Podcast),
    ("podcasts", UsageType::Podcast),
    ("music", UsageType::Unknown),
    ("media", UsageType::Unknown),
    ("tv", UsageType::TvMovie),
    ("movies", UsageType::TvMovie),
    ("film", UsageType::TvMovie),
    ("radio", UsageType::Podcast),
    ("fiction", UsageType::Audiobook),
    // News is watched and listened to; the medium is not in the word.
    ("news", UsageType::Unknown),
    ("noticias", UsageType::Unknown),
    ("nachrichten", UsageType::Unknown),
    ("actualites", UsageType::Unknown),
    ("notizie", UsageType::Unknown),
    ("comedy", UsageType::TvMovie),
    ("humor", UsageType::TvMovie),
    ("humour", UsageType::TvMovie),
    ("documentary", UsageType::TvMovie),
    ("documentaries", UsageType::TvMovie),
    ("animation", UsageType::TvMovie),
    ("cartoons", UsageType::TvMovie),
    ("anime", UsageType::TvMovie),
    ("spiritual", UsageType::Prerecorded),
];

/// The usage type a host's category points at, when it is one recorded media are given.
pub(super) fn media_category(category: &str) -> Option<UsageType> {
    let folded = fold(category.trim());
    MEDIA_CATEGORY_TYPES.iter().find(|(c, _)| *c == folded).map(|(_, t)| *t)
}

/// Lowercase, without the accents of Latin scripts ("Capítulo" is "capitulo", "Hörbuch"
/// "horbuch", "ß" "ss"), full-width digits as ASCII and typographic apostrophes as `'`, so that
/// one word list serves the spellings hosts' summarizers produce.
pub(super) fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => out.push('a'),
            'ç' | 'ć' | 'č' => out.push('c'),
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' | 'ī' => out.push('i'),
            'ñ' | 'ń' | 'ň' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => out.push('o'),
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ś' | 'š' => out.push('s'),
            'ź' | 'ż' | 'ž' => out.push('z'),
            'ł' => out.push('l'),
            'ř' => out.push('r'),
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            '’' | '‘' | '`' => out.push('\''),
            '０'..='９' => out.push(char::from(b'0' + (c as u32 - '０' as u32) as u8)),
            _ => out.push(c),
        }
    }
    out
}

/// `word` occurs in `text` (both [`fold`]ed) on word boundaries; an ending `s`, `es`, `n` or
/// `en` may follow (plurals and inflections: "episodes", "capitulos", "Folgen", "Patienten"). A
/// word that is not ASCII (Japanese, Chinese) matches anywhere: those scripts have no spaces.
pub(super) fn has_word(text: &str, word: &str) -> bool {
    if !word.is_ascii() {
        return text.contains(word);
    }
    let alnum_before = |i: usize| text[..i].chars().next_back().is_some_and(char::is_alphanumeric);
    let alnum_at = |i: usize| text[i..].chars().next().is_some_and(char::is_alphanumeric);
    let mut from = 0;
    while let Some(pos) = text[from..].find(word) {
        let start = from + pos;
        let end = start + word.len();
        if !alnum_before(start)
            && ["", "s", "es", "n", "en"].iter().any(|e| text[end..].starts_with(e) && !alnum_at(end + e.len()))
        {
            return true;
        }
        // `word` starts with an ASCII byte, so `start + 1` is a character boundary.
        from = start + 1;
    }
    false
}

/// The media type a conversation's metadata describes, and the first word that says so: a
/// [`Strength::Named`] word, else (when `allow_cues`) a [`Strength::Cue`].
pub(super) fn media_of(text: &str, allow_cues: bool) -> Option<(UsageType, &'static str)> {
    let text = without(text, NOT_MEDIA);
    let pick = |strength: Strength| {
        let mut hits: BTreeMap<UsageType, (usize, &'static str)> = BTreeMap::new();
        for &(word, ty, s) in MEDIA_WORDS {
            if s == strength && has_word(&text, word) {
                hits.entry(ty).or_insert((0, word)).0 += 1;
            }
        }
        let rank = |t: &UsageType| SPECIFICITY.iter().position(|s| s == t).unwrap_or(SPECIFICITY.len());
        hits.into_iter().max_by(|a, b| a.1.0.cmp(&b.1.0).then(rank(&b.0).cmp(&rank(&a.0)))).map(|(t, (_, w))| (t, w))
    };
    pick(Strength::Named).or_else(|| if allow_cues { pick(Strength::Cue) } else { None })
}

/// The metadata describes live people talking.
pub(super) fn personal_text(text: &str) -> bool {
    PERSONAL_WORDS.iter().any(|w| has_word(text, w))
}

/// Short first-person words that are other words in other languages, with words of their own
/// language that must stand beside them: "i" is "and" in Catalan, Polish and Croatian, "the" in
/// Italian, "in" in Swedish and (as "í") Faroese; "je" is "is" in Croatian and Czech and "you"
/// in Dutch. English writes its "I" upper case.
const FIRST_PERSON_IN_CONTEXT: &[(&str, &[&str])] = &[
    ("I", &["the", "and", "with", "my", "of", "about", "we", "our"]),
    ("je", &["et", "une", "du", "avec", "mon", "ma"]),
];

/// The overview says the user took part ([`FIRST_PERSON`], and [`FIRST_PERSON_IN_CONTEXT`] beside
/// words of its language); `folded` is the overview [`fold`]ed, `original` as the host sent it.
pub(super) fn first_person(folded: &str, original: &str) -> bool {
    FIRST_PERSON.iter().any(|w| has_exact_word(folded, w))
        || FIRST_PERSON_IN_CONTEXT.iter().any(|(word, beside)| {
            // "I" is matched as written (upper case only), "je" in the folded text.
            let text = if word.chars().any(char::is_uppercase) { original } else { folded };
            has_exact_word(text, word) && beside.iter().any(|b| has_exact_word(folded, b))
        })
}

/// `word` occurs in `text` on word boundaries, with no ending: "i" is not the start of "in".
pub(super) fn has_exact_word(text: &str, word: &str) -> bool {
    // Scripts without spaces (Japanese, Chinese) have no word boundaries to look for.
    if word.chars().all(|c| c >= '\u{2E80}') {
        return text.contains(word);
    }
    text.match_indices(word).any(|(start, _)| {
        let end = start + word.len();
        !text[..start].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '\'')
            && !text[end..].chars().next().is_some_and(|c| c.is_alphanumeric() || c == '\'')
    })
}

/// The distinct [`CONTENT_CUES`] and [`Strength::Cue`] words of [`MEDIA_WORDS`] in `text`
/// ([`fold`]ed), with the media type each points at.
pub(super) fn content_cues(text: &str) -> Vec<(&'static str, UsageType)> {
    let text = without(text, NOT_MEDIA);
    let text = without(&text, NOT_CUES);
    let cues = MEDIA_WORDS.iter().filter(|(_, _, s)| *s == Strength::Cue).map(|&(w, t, _)| (w, t));
    CONTENT_CUES.iter().copied().chain(cues).filter(|(w, _)| has_word(&text, w)).collect()
}

/// Phrases that contain a cue of [`CONTENT_CUES`] but describe people present, not content played:
/// someone who "reads out" comments, names, questions or results reads short things aloud to
/// the people in front of them (a host, a teacher, a chair); a book is read, or read aloud.
/// [`fold`]ed; removed from the text before the cues are looked for.
const NOT_CUES: &[&str] = &["reads out", "read out"];

/// Words and phrases that contain a word of [`MEDIA_WORDS`] or [`CONTENT_CUES`] but say something
/// else. Words outside the Latin script match anywhere, so a film sits inside "充电影响" (charging
/// affects), a drama inside "민영화" (privatisation) and an animation inside "アニメーション" (a
/// slide's animation); and some everyday phrases use the word itself: radio calisthenics, a
/// school's or a hospital's public address (a shop's is its recorded loop), an X-ray film, a serial number. [`fold`]ed; removed from the text
/// before media words and cues are looked for.
const NOT_MEDIA: &[&str] = &[
    // Chinese
    "电影响",
    "電影響",
    "记录好的",
    "記錄好的",
    "登录好的",
    "登錄好的",
    "电台账",
    "电台区",
    "电台灯",
    "直播客",
    "传播出",
    "直播出",
    "散播出",
    "幻灯片放映",
    "幻燈片放映",
    "严重播",
    "注重播",
    "录播教室",
    "联合集团",
    "混合集",
    "投影片",
    // Japanese
    "アニメーション",
    "校内放送",
    "館内放送",
    "院内放送",
    "構内放送",
    "社内放送",
    "実況見分",
    "イベントリスナー",
    "ドラマチック",
    "ドラマー",
    "反映画",
    "ラジオ体操",
    "ラジオボタン",
    "ラジオ波",
    "ラジオペンチ",
    "一番組",
    // Korean
    "민영화",
    "공영화",
    "국영화",
    "유방영상",
    "지방영업",
    "드라마틱",
    // Russian and Ukrainian: told (a story is told in the present tense: "рассказывает" stays a
    // cue), an agenda, a hotel, acute
    "рассказал",
    "повестк",
    "гостиниц",
    "гостр",
    // Arabic, Persian, Hebrew, Hindi, Bengali, Georgian, Armenian, Amharic: a serial number, an
    // X-ray film, a screen protector, a registered teacher, radiology
    "الرقم المسلسل",
    "رقم مسلسل",
    "فيلم أشعة",
    "فيلم حماية",
    "مدرس مسجل",
    "एक्स-रे फिल्म",
    "एक्स-रे फ़िल्म",
    "رادیولوژ",
    "راديولوج",
    "רדיולוג",
    "रेडियोलॉज",
    "রেডিওলজ",
    "რადიოლოგ",
    "ռադիոլոգ",
    "ሬዲዮሎጂ",
    // Thai: a wound reopened; Vietnamese: Ms Thu is ready, a revenue at hand
    "แผลเปิดซ้ำ",
    "thu sẵn sang",
    "thu sẵn co",
];

/// `text` without the phrases of `phrases`, each replaced by a space.
fn without<'a>(text: &'a str, phrases: &[&str]) -> std::borrow::Cow<'a, str> {
    let mut text = std::borrow::Cow::Borrowed(text);
    for phrase in phrases {
        if text.contains(phrase) {
            text = std::borrow::Cow::Owned(text.replace(phrase, " "));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_out_comments_is_not_a_story_read() {
        let cues = |text: &str| content_cues(&fold(text)).into_iter().map(|c| c.0).collect::<Vec<_>>();
        assert_eq!(cues("The seller reads out viewers' questions and counts down the deal."), Vec::<&str>::new());
        assert_eq!(cues("The chair read out the results of the vote."), Vec::<&str>::new());
        assert_eq!(cues("She reads the next part of the novel."), vec!["novel", "reads"]);
    }

    #[test]
    fn everyday_words_that_contain_a_media_word_or_share_it_name_no_media() {
        let named = |text: &str| media_of(&fold(text), false).map(|m| m.1);
        for text in [
            "充电影响电池寿命",
            "의료 민영화 반대",
            "スライドにアニメーションを設定",
            "把记录好的数据发给我",
            "朝のラジオ体操",
            "校内放送で連絡",
            "上司に説教された",
            "医師が瞑想を勧めた",
            "直播客服的话术",
            "疾病传播出去",
            "查看监控回放发现小偷",
            "资料合集",
            "Выпуск облигаций",
            "Слушатели курсов повышения квалификации задали вопросы",
            "Трансляция педагогического опыта",
            "Психолог рекомендовала медитацию",
            "Τομογραφία εκπομπής ποζιτρονίων",
            "Ders kaydı dönemi başladı",
            "მონაცემთა გადაცემა",
            "Հանցագործության մասին հաղորդում",
            "የወባ ስርጭት ጨምሯል",
            "परिपत्र प्रसारित किया गया",
            "الرقم المسلسل للجهاز",
            "فيلم أشعة الصدر",
            "שידור נתונים מהחיישן",
            "ارجاع به رادیولوژی",
        ] {
            assert_eq!(named(text), None, "{text}");
        }
        for text in [
            "Выпуск подкаста 12",
            "Трансляция матча",
            "ラジオ番組を聴く",
            "电影《流浪地球》",
            "어제 본 영화",
            "שידור חוזר של התוכנית",
            "የቴሌቪዥን ስርጭት",
            "ტელეგადაცემა",
            "Καθημερινή ραδιοφωνική εκπομπή",
        ] {
            assert!(named(text).is_some(), "{text}");
        }
        // Told and an agenda are not stories.
        let cues = |text: &str| content_cues(&fold(text)).into_iter().map(|c| c.0).collect::<Vec<_>>();
        assert_eq!(cues("Пациент рассказал о болях, обсудили повестку"), Vec::<&str>::new());
    }

    #[test]
    fn every_listed_word_is_written_folded() {
        // A word written with an accent or a capital would never match the folded text.
        let lists = MEDIA_WORDS
            .iter()
            .map(|w| w.0)
            .chain(CONTENT_CUES.iter().map(|w| w.0))
            .chain(PERSONAL_WORDS.iter().copied())
            .chain(NOT_MEDIA.iter().copied())
            .chain(NOT_CUES.iter().copied());
        for word in lists.chain(FIRST_PERSON.iter().copied()) {
            assert_eq!(fold(word), word, "{word:?} is not folded");
        }
    }

    #[test]
    fn media_is_named_in_the_languages_of_asian_app_markets() {
        let named = |text: &str| media_of(&fold(text), false).map(|m| m.0);
        let cue = |text: &str| media_of(&fold(text), true).map(|m| m.0);
        assert_eq!(named("주말 드라마 몰아보기 3화"), Some(UsageType::TvMovie), "particles attach in Korean");
        assert_eq!(named("청취자가 보낸 사연을 읽어 준다"), Some(UsageType::Podcast));
        assert_eq!(named("Xem phim bộ Hàn Quốc tập 12"), Some(UsageType::TvMovie));
        assert_eq!(named("Sinetron favorit ibu, episode malam"), Some(UsageType::TvMovie));
        assert_eq!(named("电视剧《山海情》第12集"), Some(UsageType::TvMovie));
        // What a live person also has (listeners, a host) is only a cue.
        assert_eq!(named("ผู้ฟังถามคำถามหลังการบรรยาย"), None);
        assert_eq!(cue("ผู้ฟังถามคำถามหลังการบรรยาย"), Some(UsageType::Podcast));
        assert_eq!(named("Reviewing replays of last night's scrim"), None);
    }

    #[test]
    fn a_lecture_that_says_it_is_recorded_is_named_a_lecture_alone_is_not() {
        let named = |text: &str| media_of(&fold(text), false).map(|m| m.0);
        for text in [
            "의사국가고시 내과 총정리: 녹화 강의로 핵심 개념을 설명한다",
            "کلاس ضبط\u{200c}شده جراحی؛ استاد مطالب مهم را توضیح می\u{200c}دهد",
            "Aufgezeichnete Vorlesung: Kardiologie, Teil 3",
            "Lezione registrata di farmacologia",
            "Видеолекция по анатомии, часть 2",
            "Dahiliye konu anlatım videosu 14",
            "محاضرة مسجلة في علم الأدوية",
            "药理学录播课 第12讲",
            "Recorded class: mortgage basics",
        ] {
            assert_eq!(named(text), Some(UsageType::Prerecorded), "{text}");
        }
        // A lecture or a class alone is what a live teacher gives.
        for text in ["내과 강의 12강", "Vorlesung Kardiologie, Teil 3", "Лекция по анатомии", "개인강습 3회차"]
        {
            assert_eq!(named(text), None, "{text}");
        }
    }

    #[test]
    fn a_broadcast_is_named_in_many_languages_television_and_channels_are_cues() {
        let named = |text: &str| media_of(&fold(text), false).map(|m| m.0);
        let cue = |text: &str| media_of(&fold(text), true).map(|m| m.0);
        for text in [
            "शैक्षिक टीवी चैनल पर एक के बाद एक पाठ प्रसारित हो रहे हैं",
            "শিক্ষা চ্যানেলে একের পর এক ক্লাস সম্প্রচার হচ্ছে",
            "Прямая трансляция заседания на телеканале",
            "Η τηλεοπτική εκπομπή της Κυριακής με τον παρουσιαστή",
            "השידור החוזר של התוכנית",
            "Uitzending van het journaal",
            "Maç canlı yayın, ikinci yarı",
            "Chương trình phát sóng lúc nửa đêm",
            "ละครที่ออกอากาศเมื่อคืน",
            "新闻联播播出",
        ] {
            assert_eq!(named(text), Some(UsageType::TvMovie), "{text}");
        }
        // Emissions are not broadcasts: the Greek plural is only a cue.
        for text in ["Οι εκπομπές ρύπων της ναυτιλίας", "Νέοι κανόνες εκπομπών για τα πλοία"]
        {
            assert_eq!(named(text), None, "{text}");
            assert_eq!(cue(text), Some(UsageType::TvMovie), "{text}");
        }
        // Television, a channel and a programme are what a live person works on too: cues.
        for text in ["Elimu TV: hisabati", "القناة التعليمية، الحصة 3", "テレビの配線の相談", "Телевизор в гостиной"]
        {
            assert_eq!(named(text), None, "{text}");
            assert_eq!(cue(text), Some(UsageType::TvMovie), "{text}");
        }
        // Emissions, canals and root canals are not media.
        for text in ["Cut CO2 emissions by 2030", "Kanal tedavisi kontrolü", "Root canal follow-up"] {
            assert_eq!(cue(text), None, "{text}");
        }
    }

    #[test]
    fn an_event_played_back_afterwards_is_named_a_recording_alone_is_not() {
        let named = |text: &str| media_of(&fold(text), false).map(|m| m.0);
        for text in [
            "Acme Q2 FY26 Earnings Webcast Replay",
            "Aufzeichnung der Telefonkonferenz von Acme mit Fragen der Analysten",
            "Gravação da teleconferência de resultados",
            "业绩电话会议回放",
            "決算説明会 音声配信 4",
        ] {
            assert_eq!(named(text), Some(UsageType::Prerecorded), "{text}");
        }
        assert_eq!(named("Le match en rediffusion"), Some(UsageType::TvMovie));
        assert_eq!(named("드라마 다시보기 5화"), Some(UsageType::TvMovie));
        // What a voice app calls every new recording, and a coach going through a recorded call
        // with an agent, name nothing.
        for text in ["Grabación 12", "Gravação", "Aufzeichnung 3", "Call recording review with Maria", "録音 4"] {
            assert_eq!(named(text), None, "{text}");
        }
    }

    #[test]
    fn a_video_a_documentary_and_a_cartoon_are_cues_in_many_languages_a_video_call_is_live() {
        let named = |text: &str| media_of(&fold(text), false).map(|m| m.0);
        let cue = |text: &str| media_of(&fold(text), true).map(|m| m.0);
        for text in [
            "Video inaeleza jinsi mbu wanavyoeneza malaria",
            "Ividiyo ichaza izimpawu zeTB",
            "Bidiyon yana bayanin allurar rigakafi",
            "ቪዲዮው ወባ እንዴት እንደሚተላለፍ ያብራራል",
            "Ipinaliwanag ng bidyo ang tamang paghuhugas ng kamay",
            "វីដេអូនេះចាក់សន្ទនាខ្លីៗជាភាសាកូរ៉េ",
            "Видео о вакцинации детей",
            "健康教育の動画",
        ] {
            assert_eq!(named(text), None, "{text}");
            assert_eq!(cue(text), Some(UsageType::Prerecorded), "{text}");
        }
        for text in ["Belgesel: Kapadokya", "Мультики про кота", "Dibujos animados del sábado", "自然纪录片"]
        {
            assert_eq!(named(text), None, "{text}");
            assert_eq!(cue(text), Some(UsageType::TvMovie), "{text}");
        }
        assert_eq!(named("سریال پایتخت"), None);
        assert_eq!(cue("سریال پایتخت"), Some(UsageType::TvMovie));
        // A call by video is people talking.
        for text in
            ["Videochamada com a família", "Видеозвонок с бабушкой", "영상통화로 상담", "Panggilan video dengan klien"]
        {
            assert!(personal_text(&fold(text)), "{text}");
        }
    }

    #[test]
    fn episodes_podcasts_narrators_sermons_news_and_streams_are_read_in_more_scripts() {
        let named = |text: &str| media_of(&fold(text), false).map(|m| m.0);
        let cue = |text: &str| media_of(&fold(text), true).map(|m| m.0);
        for (text, ty) in [
            ("পর্ব নয়: নতুন এপিসোড", UsageType::Podcast),
            ("پادکست رادیو راه، قسمت ۱۲", UsageType::Podcast),
            ("خطبة الجمعة عن الصبر", UsageType::Prerecorded),
            ("Khutbah Jumat: keutamaan sabar", UsageType::Prerecorded),
            ("Jornal: telejornal da noite", UsageType::TvMovie),
            ("ナレーターが昔話を読む", UsageType::Audiobook),
        ] {
            assert_eq!(named(text), Some(ty), "{text}");
        }
        // Words that are everyday ones too are cues: an anecdote, a count in a criminal case, the
        // news; and a video in the scripts v22 missed (Sinhala, Marathi).
        for (text, ty) in [
            ("面白いエピソードを話す", UsageType::Podcast),
            ("Эпизод мошенничества по делу 12", UsageType::Podcast),
            ("أخبار الساعة التاسعة", UsageType::Podcast),
            ("වීඩියෝවේ කර්මාන්තශාලා ආරක්ෂක නීති", UsageType::Prerecorded),
            ("शेतीविषयक व्हिडिओ", UsageType::Prerecorded),
        ] {
            assert_eq!(named(text), None, "{text}");
            assert_eq!(cue(text), Some(ty), "{text}");
        }
        // A meeting's minutes, a literature review, a muscle's twitch, reasoning with a client and
        // a summary's highlights are nothing.
        for text in [
            "Berita acara rapat koordinasi",
            "Kajian pustaka bab dua",
            "Eyelid twitch for two weeks",
            "跟客户讲道理",
            "Key highlights of the meeting",
        ] {
            assert_eq!(cue(text), None, "{text}");
        }
        // An engagement party, a Seoul district and a Bollywood dance class name no media.
        for text in ["حفلة خطبة أختي", "중계동 아파트 상담", "Bollywood dance class"] {
            assert_eq!(named(text), None, "{text}");
        }
        // A film award is not a video call.
        assert!(!personal_text(&fold("청룡영화상 시상식")));
    }

    #[test]
    fn a_promo_video_or_tv_channel_is_played_a_promo_alone_is_not_media() {
        let named = |text: &str| media_of(&fold(text), false).map(|m| m.0);
        assert_eq!(named("Hotel TV channel: spa offers"), Some(UsageType::TvMovie));
        assert_eq!(named("Welcome video (dining)"), Some(UsageType::Prerecorded));
        // A promo alone is not even a cue: in Indonesian and Spanish it is a sale's discount,
        // which a live seller announces all day.
        assert_eq!(media_of(&fold("Sesi tanya jawab tentang ongkos kirim dan promo gratis ongkir"), true), None);
    }

    #[test]
    fn a_recording_played_over_and_over_is_named_a_recording_alone_is_not() {
        let named = |text: &str| media_of(&fold(text), false).map(|m| m.0);
        for text in [
            "Một giọng nói thu sẵn rao bánh mì, phát đi phát lại",
            "店门口的喇叭循环播放促销内容",
            "เสียงอัดประกาศขายผลไม้ เปิดวนทั้งวัน",
            "Rekaman promosi diputar berulang lewat pengeras suara",
            "Suara rekaman menawarkan diskon",
            "The same safety message on a loop all night",
        ] {
            assert_eq!(named(text), Some(UsageType::Prerecorded), "{text}");
        }
        // The default titles of a new recording in voice apps ("Rekaman" is Indonesian for
        // "Recording") name nothing, or every untitled live talk would be media.
        for text in ["Ghi âm 3", "录音 12", "Rekaman baru 4", "New Recording 7"] {
            assert_eq!(media_of(&fold(text), true), None, "{text}");
        }
        // A figure of speech in French is only a cue.
        assert_eq!(named("Cette question tourne en boucle dans la réunion"), None);
    }

    #[test]
    fn words_match_across_spellings_and_languages() {
        let w = |text: &str, word: &str| has_word(&fold(text), word);
        assert!(w("Capítulo 45: La traición de Ricardo", "capitulo"));
        assert!(w("Ein Hörbuch für die Nacht", "horbuch"));
        assert!(w("Los episodios de la semana", "episodio"), "plural es/s");
        assert!(w("Die Patienten der Station", "patient"), "inflection en");
        assert_eq!(fold("第１２話"), "第12話", "full-width digits");
        assert!(w("進撃の巨人のオーディオブック", "オーディオブック"), "no spaces in Japanese");
        assert!(!w("Radiology follow-up", "radio") && !w("Series A funding round", "tv series"));
        assert!(!w("Cut CO2 emissions", "emision de radio"));
        // Ordinary words that only look like media stay ordinary.
        for text in ["Series A funding with the board", "Planning the episode of flu season at the clinic"] {
            let t = fold(text);
            assert!(personal_text(&t) || media_of(&t, true).is_none_or(|(ty, _)| ty == UsageType::Podcast), "{text}");
        }
        assert_eq!(media_of(&fold("Series A funding round"), true), None);
        assert_eq!(media_of(&fold("Sermón: La gracia abunda"), false), Some((UsageType::Prerecorded, "sermon")));
        assert_eq!(
            media_of(&fold("Second Half Play-by-Play: Rovers vs United"), false),
            Some((UsageType::TvMovie, "play-by-play"))
        );
        assert_eq!(
            media_of(&fold("Guided Sleep Meditation – Day 14"), false).map(|m| m.0),
            Some(UsageType::Prerecorded)
        );
        assert_eq!(
            media_of(&fold("Live commentary: Rovers vs United"), false),
            Some((UsageType::TvMovie, "live commentary"))
        );
        let author = fold("The author argues that cities shaped the modern state.");
        assert_eq!(media_of(&author, true), Some((UsageType::Audiobook, "the author")));
        assert!(!personal_text(&author));
        assert!(personal_text(&fold("Call with the author about the manuscript")), "live: the cue is silenced");
        // Cues only where allowed.
        let plot = fold("The protagonist confronts her father; the plot thickens.");
        assert_eq!(media_of(&plot, false), None);
        assert_eq!(media_of(&plot, true).map(|m| m.0), Some(UsageType::Audiobook));
    }
}
