//! Vocabulary. Regular honest titles are everyday conversations; the heavy honest populations
//! (further down) have numbered titles and, now and then, media, as real lives do; abuser titles
//! are what hosts see for such usage. The heavy honest vocabulary deliberately holds what trips a
//! naive classifier: numbers after "lecture" and "part", a movie night, a TV show chatted about on a break.
//!
//! Only word lists live here; [`super::describe`] turns them into titles and overviews.

pub(super) const CATEGORIES: [&str; 9] =
    ["work", "personal", "education", "health", "social", "entertainment", "business", "finance", "legal"];
pub(super) const CAT_EDUCATION: u8 = 2;
pub(super) const CAT_ENTERTAINMENT: u8 = 5;
/// Honest categories are the first five, drawn with these weights.
pub(super) const HONEST_CATEGORY_WEIGHTS: [f64; 5] = [0.40, 0.25, 0.12, 0.08, 0.15];
/// Commercial transcription lands in one or two of these.
pub(super) const COMMERCIAL_CATEGORIES: [u8; 4] = [0, 6, 7, 8];

/// (title, overview); `{name}` is replaced by a name.
pub(super) type Topic = (&'static str, &'static str);

pub(super) const HONEST_TOPICS: [&[Topic]; 5] = [
    &[
        (
            "Weekly team meeting",
            "The team went through last week's progress, blockers and priorities for the next sprint.",
        ),
        ("Daily standup", "Quick round of updates from each team member; two blockers noted for follow-up."),
        ("1:1 with {name}", "Regular one-on-one with {name} covering goals, feedback and workload."),
        (
            "Call with {name} about the contract",
            "Went through contract terms, pricing and the signing timeline with {name}.",
        ),
        ("Project sync with {name}", "Synced with {name} on the project plan, open tasks and the next milestones."),
        (
            "Interview with a candidate",
            "Interviewed a candidate for the open engineering role; notes on experience and fit.",
        ),
        ("Quarterly planning meeting", "Planning for next quarter: goals, headcount and budget trade-offs."),
        ("Design review", "Reviewed the new design proposal and agreed on changes to the onboarding flow."),
        ("Customer call with {name}", "Customer call with {name} about feature requests and a billing question."),
    ],
    &[
        ("Family dinner", "Dinner with the family about school, weekend plans and relatives visiting."),
        ("Catch-up with {name}", "Caught up with {name} on recent news, work and travel plans."),
        ("Planning the weekend trip", "Talked through the route, bookings and packing list for the weekend trip."),
        ("Errands and to-do list", "Voice notes about groceries, bills to pay and errands for the week."),
        ("Phone call with {name}", "Phone call with {name} about the move and who helps on Saturday."),
    ],
    &[
        ("Statistics class", "In-person class on hypothesis testing, with questions from students."),
        ("Study group with {name}", "Study group with {name} working through practice problems before the exam."),
        (
            "Office hours with Professor {name}",
            "Asked Professor {name} about assignment feedback and the final project.",
        ),
        ("Spanish class", "Conversation practice in Spanish class, role-playing ordering at a restaurant."),
    ],
    &[
        ("Doctor visit", "Appointment about recurring headaches; new prescription and a follow-up in a month."),
        ("Physiotherapy appointment", "The physiotherapist reviewed the knee exercises and adjusted the routine."),
        ("Dentist appointment", "Routine check-up; the dentist recommended a cleaning in six months."),
        ("Therapy session", "Weekly therapy session about stress at work and sleep habits."),
    ],
    &[
        ("Coffee with {name}", "Coffee with {name}, talking about their new job and a friend's wedding."),
        ("Dinner with friends", "Dinner with friends: travel stories, a new restaurant and weekend plans."),
        ("Birthday party for {name}", "Conversations at {name}'s birthday party with family and friends."),
        ("Neighborhood meeting", "Neighbors discussed street parking, a summer party and the community garden."),
    ],
];

pub(super) const NAMES: [&str; 16] = [
    "Priya", "Marco", "Aisha", "Tom", "Mei", "Lucas", "Sofia", "Daniel", "Fatima", "Jonas", "Elena", "Kenji", "Olivia",
    "Ravi", "Grace", "Mateo",
];
pub(super) const BOOKS: [&str; 8] = [
    "The Silent Orchard",
    "Harbor of Glass",
    "A Winter in Lisbon",
    "The Cartographer's Daughter",
    "Echoes of the Deep",
    "The Last Lighthouse",
    "Salt and Iron",
    "The Clockmaker's Secret",
];
pub(super) const PODCASTS: [&str; 8] = [
    "The Morning Brief",
    "Deep Dive Tech",
    "History Uncovered",
    "The Money Hour",
    "Mindful Minutes",
    "True Crime Tonight",
    "Startup Stories",
    "Curious Science",
];
pub(super) const PODCAST_TOPICS: [&str; 8] = [
    "interest rates",
    "AI chips",
    "the Roman empire",
    "sleep science",
    "startup funding",
    "ocean exploration",
    "ancient cities",
    "personal finance",
];
pub(super) const TV_SHOWS: [&str; 8] = [
    "Northern Lights",
    "Harbor Town",
    "The Crown Jewels",
    "Space Rangers",
    "Kitchen Wars",
    "Detective Lane",
    "Blue Valley",
    "The Heist Crew",
];
pub(super) const MOVIES: [&str; 6] = [
    "Midnight Express Run",
    "The Long Road Home",
    "Galaxy Drift",
    "Iron Harbor",
    "Summer of Storms",
    "The Quiet Witness",
];
pub(super) const LECTURE_SUBJECTS: [&str; 6] =
    ["linear algebra", "organic chemistry", "macroeconomics", "world history", "machine learning", "thermodynamics"];
pub(super) const CLIENTS: [&str; 6] = [
    "Acme Legal LLP",
    "Northside Clinic",
    "Brightway Insurance",
    "Kessler & Sons",
    "Metro Realty",
    "Summit Consulting",
];
pub(super) const CLIENT_DOCUMENTS: [&str; 5] = [
    "deposition recording",
    "medical dictation",
    "insurance claim recording",
    "board minutes",
    "focus group recording",
];

// Vocabulary of the heavy honest populations. Titles are what a host's summarizer writes for such
// days: varied, sometimes numbered ("Sprint 14 planning", "CS101 lecture — week 3", "MATH 221
// Lecture 14", "Ticket #48213"), sometimes with a word that also describes media (a movie night, a
// bedtime chapter, a colleague's TV show), because real lives have those too.
//
// Placeholders: `{name}`/`{name2}` people, `{company}`, `{project}`, `{issue}`, `{n}` a number.

pub(super) const MEETING_TOPICS: [Topic; 18] = [
    ("Weekly team meeting", "The team went through last week's progress, blockers and the priorities for next week."),
    ("Daily standup", "Quick round of updates; {name} is blocked on the API change and {name2} will pair with them."),
    ("1:1 with {name}", "Regular one-on-one with {name} about goals, feedback and workload."),
    ("Sprint {n} planning", "Estimated the backlog for sprint {n}; {name} raised the risk of the migration slipping."),
    ("Sprint {n} retro", "What went well and what did not in sprint {n}; agreed to keep code reviews under a day."),
    ("{project} design review", "Reviewed the {project} design; {name2} asked for a simpler rollout plan."),
    ("{project} status", "Status of {project}: two milestones done, the vendor integration is two weeks late."),
    ("Customer call with {company}", "{company} asked for single sign-on and a discount on the annual plan."),
    ("Interview: senior engineer candidate", "Interviewed a candidate for the senior role; strong on systems design."),
    ("Quarterly review with {company}", "Business review with {company}: usage is up, two escalations still open."),
    ("All-hands", "Company all-hands: results of the quarter, new hires and open questions for the CEO."),
    ("Budget for next quarter", "Went line by line through next quarter's budget with finance; travel is cut."),
    ("Hiring pipeline with {name}", "Pipeline review with {name}: three candidates in the final round."),
    ("Incident review #{n}", "Postmortem of incident {n}: a config push took login down for 20 minutes."),
    (
        "Vendor negotiation with {company}",
        "Negotiated renewal terms with {company}; they offered a three-year discount.",
    ),
    ("Roadmap priorities", "Debated which features make the next release and which move to the autumn."),
    ("Onboarding {name}", "Walked {name} through the codebase, the deploy process and who to ask for what."),
    ("Pricing options", "Compared three pricing options; sales wants a cheaper entry tier, finance does not."),
];
/// A long meeting the device split in two, recorded back to back.
pub(super) const BOARD_MEETING: Topic =
    ("Board meeting part {n}", "Board meeting: financials, the hiring plan and the fundraising timeline.");

/// (code, name, topics): the courses a student attends.
pub(super) const COURSES: [(&str, &str, [&str; 4]); 8] = [
    ("CS101", "Intro to Programming", ["recursion", "linked lists", "hash tables", "sorting algorithms"]),
    ("MATH 221", "Linear Algebra", ["eigenvalues", "matrix inverses", "vector spaces", "orthogonality"]),
    ("CHEM 210", "Organic Chemistry", ["reaction mechanisms", "stereochemistry", "alkenes", "spectroscopy"]),
    ("ECON 102", "Macroeconomics", ["inflation", "interest rates", "unemployment", "fiscal policy"]),
    ("HIST 130", "World History", ["the Silk Road", "the printing press", "the Ottoman empire", "the Cold War"]),
    ("PHYS 150", "Mechanics", ["Newton's laws", "momentum", "rotational motion", "oscillations"]),
    ("BIO 110", "Cell Biology", ["mitosis", "cell membranes", "protein synthesis", "enzymes"]),
    ("PSYC 100", "Intro to Psychology", ["memory", "conditioning", "perception", "child development"]),
];
pub(super) const LECTURE_OVERVIEWS: [&str; 4] = [
    "Live lecture: Professor {name} covered {topic}; students asked about the homework.",
    "In-class lecture on {topic}, with a short quiz at the end.",
    "{topic}: the professor worked examples on the board and took questions from the room.",
    "Lecture in the main hall about {topic}; the next problem set is due on Friday.",
];
pub(super) const STUDY_TOPICS: [Topic; 3] = [
    ("Study group with {name}", "Went through practice problems with {name} and {name2} before the quiz."),
    ("Office hours with Professor {name}", "Asked Professor {name} about the grading of the last assignment."),
    ("Group project meeting", "Split the group project into parts; {name} takes the slides, {name2} the data."),
];

pub(super) const CALL_TOPICS: [Topic; 8] = [
    ("Call with {name} from {company}", "{name} from {company} asked about {issue}; promised a follow-up by e-mail."),
    ("Support call: {issue}", "A customer called about {issue}; walked them through the fix step by step."),
    ("Follow-up with {name}", "Followed up with {name} at {company} on {issue}; they decide next week."),
    ("Demo for {company}", "Product demo for {company}'s team; questions about integrations and pricing."),
    ("Renewal — {company}", "Renewal discussion with {company}; they want a longer contract at a lower price."),
    ("Ticket #{n} — {issue}", "Phone support for ticket {n}: {issue}; escalated to the second line."),
    ("Discovery call with {company}", "First call with {company} about their team size, current tools and budget."),
    ("Callback to {name}", "Called {name} back about {issue}; resolved on the call."),
];
pub(super) const ISSUES: [&str; 8] = [
    "a billing error",
    "login problems",
    "a missing invoice",
    "the mobile app crashing",
    "an export that fails",
    "changing their plan",
    "a delayed delivery",
    "data privacy questions",
];
pub(super) const COMPANIES: [&str; 8] =
    ["Northwind", "Globex", "Initech", "Umbrella Foods", "Vandelay Imports", "Stark Logistics", "Hooli", "Soylent"];
pub(super) const PROJECTS: [&str; 6] =
    ["Checkout v2", "Atlas", "Data platform", "Mobile redesign", "Billing migration", "Falcon"];

pub(super) const NIGHT_TOPICS: [Topic; 8] = [
    ("Night rounds", "Rounds on the ward: checked vitals, pain levels and drips; one patient needed fluids."),
    ("Call with the on-call doctor", "Called the on-call doctor about a patient's blood pressure; new orders given."),
    ("Admission from the emergency department", "Admitted a patient: history, allergies and current medication."),
    ("Break with {name}", "Coffee break with {name} about the rota, holidays and a TV show they both watch."),
    ("Medication round", "Night medication round; one patient refused a dose and it was documented."),
    ("Update for a patient's daughter", "A patient's daughter called for an update; explained the plan for tomorrow."),
    ("Incident report with {name}", "Wrote up a fall on the ward with {name}; no injury, the bed alarm is now on."),
    ("Patient could not sleep", "Sat with an anxious patient who could not sleep and talked through the surgery."),
];
pub(super) const NIGHT_HANDOVERS: [Topic; 2] = [
    ("Shift handover with {name}", "Handover from the day team: two new admissions and one patient to watch."),
    ("Morning handover", "Handed over to the morning team: overnight events and pending lab results."),
];

pub(super) const FAMILY_TOPICS: [Topic; 10] = [
    ("Breakfast with the kids", "Breakfast: the kids argued about cereal and planned the school day."),
    ("School run", "On the way to school: spelling practice and who picks up whom this afternoon."),
    ("Homework help", "Helped with math homework: fractions, then a reading log for {name}."),
    ("Kids playing", "The kids played a pretend shop game with a lot of shouting and laughter."),
    ("Call with grandma", "Video call with grandma about her garden and the kids' school play."),
    ("Dinner together", "Family dinner: the day at work and school, and the weekend plans."),
    ("Planning the weekend", "Swimming lessons, {name}'s birthday party and the groceries for Sunday."),
    ("Bath and bedtime", "Bedtime routine; the kids negotiated five more minutes and a glass of water."),
    ("Sorting out the bills", "The parents went through the bills, the car insurance and the holiday budget."),
    ("Cooking together", "Made pizza with the kids; flour everywhere and an argument about toppings."),
];
pub(super) const CARTOONS: [&str; 5] = ["Bluey", "Paw Patrol", "Peppa Pig", "Octonauts", "Puffin Rock"];

/// What a regular honest user's device sometimes picks up: a podcast in the car, a film with a
/// friend. `{podcast}` and `{movie}` are filled from the media lists.
pub(super) const HONEST_MEDIA_TOPICS: [Topic; 4] = [
    ("Podcast in the car", "A {podcast} episode played in the car on the way to work."),
    ("Watching {movie} with {name}", "Watched {movie} with {name}; mostly the movie's dialogue."),
    ("Audiobook while cooking", "An audiobook played while cooking dinner."),
    ("TV in the background", "The TV was on during dinner: the news and a sitcom."),
];
/// Share of a regular honest user's conversations that are such media.
pub(super) const HONEST_MEDIA_SHARE: f64 = 0.02;

// Abusers' titles and overviews vary too: each abuser's app titles things in one style, and the
// summarizer describes each item in its own words (one of five descriptions names no media at all).

pub(super) const CHAPTER_TITLES: [&str; 8] = [
    "The Storm",
    "A Letter from Home",
    "The Harbor at Night",
    "Old Debts",
    "The Crossing",
    "What the Tide Left",
    "Strangers",
    "The Return",
];
pub(super) const PLOTS: [&str; 8] = [
    "the heroine finds a letter hidden in the lighthouse",
    "two brothers argue about selling the family farm",
    "a storm strands the travellers in a mountain village",
    "the detective questions the housekeeper again",
    "an old debt comes due and the captain must choose",
    "the sisters reunite after twenty years",
    "a stranger arrives with news from the capital",
    "the crew discovers the map is a forgery",
];
pub(super) const EPISODE_TITLES: [&str; 6] = [
    "Why rates are not coming down",
    "The chip war",
    "How Rome really fell",
    "Sleep like a scientist",
    "Inside a seed round",
    "Cities under the sea",
];
pub(super) const DOCUMENT_TITLES: [&str; 5] = [
    "Deposition of J. Alvarez",
    "Dictation: discharge summary",
    "Claim 7731 call",
    "Minutes, March board",
    "Focus group B",
];
