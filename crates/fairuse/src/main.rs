//! `fairuse`: the command line. Parses arguments and hands over to the library's commands.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use fairuse::serve::ServeArgs;
use fairuse::sim::{SimClassifier, Simulator};
use fairuse_domain::policy::{ClassifierBackend, Policy};

#[derive(Parser)]
#[command(name = "fairuse", version, about = "Fair-use metering and enforcement for real-time speech apps")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (embedded store in the data directory by default).
    Serve {
        /// The process configuration file (fairuse.toml).
        #[arg(long, env = "FAIRUSE_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:8080, or server.listen].
        #[arg(long)]
        listen: Option<String>,
        /// Where the embedded store keeps its data [default: ./data, or server.data_dir].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Replay a trace through the engine and print the outcomes as JSON lines.
    Simulate {
        /// The trace (JSON lines); `-` reads standard input.
        #[arg(long)]
        trace: String,
        /// A policy file; the shipped default when absent.
        #[arg(long, env = "FAIRUSE_POLICY")]
        policy: Option<PathBuf>,
        /// Which classifier answers; by default the policy's backend (heuristic).
        #[arg(long, value_enum)]
        classifier: Option<SimClassifier>,
        /// Where the outcome lines go; `-` is standard output.
        #[arg(long, short, default_value = "-")]
        out: String,
        /// Print lines per second and the usage-report rate to standard error at the end.
        #[arg(long)]
        stats: bool,
        /// Benchmark baseline: parse the trace and apply nothing.
        #[arg(long, hide = true)]
        parse_only: bool,
    },
    /// Print the speech in a WAV file, measured with the same VAD as the gateway.
    Meter {
        /// A WAV file (8-48 kHz, mono or stereo, PCM or float).
        file: PathBuf,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Whether two WAV recordings share audio (a replay, not a reading of the same words) and where.
    Match {
        /// The first recording (WAV, 8-48 kHz, mono or stereo, PCM or float).
        a: PathBuf,
        /// The second recording; `offset_ms` is where the shared part starts in it relative to A.
        b: PathBuf,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Write a realistic synthetic trace for backtests and benchmarks.
    GenTrace(fairuse::gen_trace::GenTraceArgs),
    /// Write a labelled population from the family files (bench/families) for leave-one-family-out evaluation.
    GenFamilies(fairuse::families::GenFamiliesArgs),
    /// Evaluate a labelled trace: detections, time to restrict, false stages, STT saved.
    Eval(fairuse::eval::EvalArgs),
    /// Write the stores' recorded history (usage, plans, conversations, verdicts, admin actions) as a trace.
    ExportTrace(fairuse::export::ExportArgs),
    /// Replay a trace under a new policy and the current one and report what changes, per user and in total.
    Backtest(fairuse::backtest::BacktestArgs),
    /// Apply database migrations (PostgreSQL when store.database_url is set) and convert Redis usage meters of an older layout (when store.redis_url is set).
    Migrate {
        #[arg(long, env = "FAIRUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate the configuration and policy files and print the effective policy.
    CheckConfig {
        /// The process configuration file (fairuse.toml); its server.policy names the policy file.
        #[arg(long, env = "FAIRUSE_CONFIG")]
        config: Option<PathBuf>,
        /// A policy file; overrides server.policy of the configuration.
        #[arg(long, env = "FAIRUSE_POLICY")]
        policy: Option<PathBuf>,
    },
}

fn load_policy(path: Option<&PathBuf>) -> anyhow::Result<Policy> {
    match path {
        None => Ok(Policy::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading policy file {}", p.display()))?;
            Policy::from_toml_str(&text).with_context(|| format!("policy file {}", p.display()))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, listen, data_dir } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
            runtime.block_on(fairuse::serve::run(ServeArgs { config, listen, data_dir }, fairuse::serve::env_map()))
        }
        Command::Migrate { config } => {
            let env = fairuse::serve::env_map();
            let cfg = fairuse::config::Config::load(config.as_deref(), &env)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
            println!("{}", runtime.block_on(fairuse::serve::migrate(&cfg, &env))?);
            Ok(())
        }
        Command::CheckConfig { config, policy } => {
            let env = fairuse::serve::env_map();
            let cfg = fairuse::config::Config::load(config.as_deref(), &env)?;
            let policy_path = policy.or_else(|| cfg.policy_path());
            let p = fairuse::config::load_policy(policy_path.as_deref(), &env)?;
            let source = policy_path.as_ref().map_or("the shipped default".to_owned(), |p| p.display().to_string());
            println!(
                "# configuration: valid (listen {}, data_dir {})",
                cfg.server.listen,
                cfg.server.data_dir.display()
            );
            println!("# effective policy (from {source}, FAIR_USE_* variables applied): valid");
            print!("{}", p.to_toml_string());
            Ok(())
        }
        Command::Simulate { trace, policy, classifier, out, stats, parse_only } => {
            let policy = load_policy(policy.as_ref())?;
            let classifier = match (classifier, policy.classifier.backend) {
                (Some(c), _) => c,
                (None, ClassifierBackend::Scripted) => SimClassifier::Scripted,
                (None, ClassifierBackend::Heuristic | ClassifierBackend::Ensemble) => SimClassifier::Heuristic,
                (None, ClassifierBackend::Openai) => {
                    bail!(
                        "simulate runs offline: the policy's classifier.backend is openai; pass --classifier heuristic or scripted"
                    )
                }
            };
            let input: Box<dyn std::io::BufRead> = if trace == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(BufReader::with_capacity(
                    1 << 20,
                    File::open(&trace).with_context(|| format!("opening trace {trace}"))?,
                ))
            };
            let output: Box<dyn Write> = if out == "-" {
                Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout().lock()))
            } else {
                Box::new(BufWriter::new(File::create(&out).with_context(|| format!("creating {out}"))?))
            };
            let started = Instant::now();
            let summary = if parse_only {
                Simulator::<Box<dyn Write>>::parse_only(input)?
            } else {
                Simulator::new(&policy, classifier, output).run(input)?
            };
            if stats {
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "simulated {} lines ({} usage reports, {} users) in {:.2} s: {:.0} lines/s, {:.0} usage reports/s",
                    summary.lines,
                    summary.usage_lines,
                    summary.users,
                    secs,
                    summary.lines as f64 / secs,
                    summary.usage_lines as f64 / secs
                );
            }
            Ok(())
        }
        Command::Meter { file, json } => {
            let r = fairuse_vad::meter_wav(&file).with_context(|| format!("metering {}", file.display()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": file.display().to_string(), "speech_ms": r.speech_ms, "duration_ms": r.duration_ms, "speech_share": r.speech_share})
                );
            } else {
                println!(
                    "{}: {} ms of speech in {} ms ({:.1}%)",
                    file.display(),
                    r.speech_ms,
                    r.duration_ms,
                    r.speech_share * 100.0
                );
            }
            Ok(())
        }
        Command::Match { a, b, json } => {
            let print = |f: &PathBuf| {
                fairuse_fingerprint::fingerprint_wav(f).with_context(|| format!("fingerprinting {}", f.display()))
            };
            let (fa, fb) = (print(&a)?, print(&b)?);
            let m = fairuse_fingerprint::compare(&fa, &fb, fairuse_fingerprint::MatchThresholds::default());
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "match": m.matched,
                        "offset_ms": m.offset_ms,
                        "shared_ms": m.shared_ms,
                        "score": (m.score * 1000.0).round() / 1000.0,
                        "a_start_ms": m.a_start_ms,
                        "b_start_ms": m.b_start_ms,
                        "shared_speech_ms": m.shared_speech_ms,
                        "mean_bit_errors": (m.mean_bit_errors * 100.0).round() / 100.0,
                    })
                );
            } else if m.matched {
                println!(
                    "match: {} ms shared, from {} ms in {} and {} ms in {} (offset {:+} ms), score {:.2}",
                    m.shared_ms,
                    m.a_start_ms,
                    a.display(),
                    m.b_start_ms,
                    b.display(),
                    m.offset_ms,
                    m.score
                );
            } else {
                println!(
                    "no match: {} and {} share no run of the same audio (best score {:.2})",
                    a.display(),
                    b.display(),
                    m.score
                );
            }
            Ok(())
        }
        Command::ExportTrace(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
            let s = runtime.block_on(fairuse::export::run(&args, &fairuse::serve::env_map()))?;
            for w in &s.warnings {
                eprintln!("fairuse: warning: {w}");
            }
            eprintln!(
                "wrote {} lines for {} users: {} usage ({:.2} h of STT), {} plans, {} conversations, {} stream sessions, {} verdicts, {} admin actions; left out: {} exempt users, {} resolutions, exemptions and appeals",
                s.lines,
                s.users,
                s.usage_lines,
                s.stt_ms as f64 / 3_600_000.0,
                s.plan_lines,
                s.conversation_lines,
                s.stream_session_lines,
                s.verdict_lines,
                s.admin_lines,
                s.exempt_users_left_out,
                s.events_left_out
            );
            Ok(())
        }
        Command::Backtest(args) => {
            print!("{}", fairuse::backtest::run(&args)?);
            Ok(())
        }
        Command::Eval(args) => {
            fairuse::eval::run(&args)?;
            Ok(())
        }
        Command::GenFamilies(args) => {
            let s = fairuse::families::run(&args)?;
            eprintln!(
                "wrote {} lines ({} usage, {} conversations) for {} users of {} families",
                s.lines, s.usage_lines, s.conversations, s.users, s.families
            );
            Ok(())
        }
        Command::GenTrace(args) => {
            let s = fairuse::gen_trace::run(&args)?;
            eprintln!("wrote {} lines ({} usage) for {} users, {} abusers", s.lines, s.usage_lines, s.users, s.abusers);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fairuse: {e:#}");
            ExitCode::from(2)
        }
    }
}
