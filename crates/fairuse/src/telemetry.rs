//! The catalogue of the metrics `/metrics` exports: a `# HELP` text for each, and a zero for the
//! series that alerts watch, set when the recorder is installed.
//!
//! Why the zeros: a counter series appears only at its first increment, and Prometheus's `rate()`
//! and `increase()` cannot see the step from "no series" to 1, so the first store error or the
//! first failed classifier run after a start would never fire an alert (and a dashboard would show
//! "No data" instead of 0). The emitting code lives in the other crates; the names here must match
//! them, which `crates/fairuse/tests/deploy_metrics.rs` checks against a running service and the
//! unit test below checks against the source.

/// `(name, help)` of every counter.
pub const COUNTERS: &[(&str, &str)] = &[
    ("fairuse_usage_reports_total", "Usage reports stored (each report of a batch counts)."),
    ("fairuse_decisions_total", "Decisions answered, by outcome (allowed, denied) and effective stage."),
    ("fairuse_stage_transitions_total", "Stage changes, by previous and new stage."),
    ("fairuse_events_total", "Enforcement events written, by kind."),
    ("fairuse_classifier_runs_total", "Classifier runs, by outcome (ok, demoted, failed, abandoned)."),
    ("fairuse_due_evaluations_queued_total", "Cap crossings queued for a later evaluation."),
    ("fairuse_due_evaluations_run_total", "Queued evaluations run."),
    ("fairuse_stream_sessions_recorded_total", "Gateway stream session snapshots stored, by closed."),
    ("fairuse_print_codes_indexed_total", "Sampled fingerprint codes added to the print index."),
    ("fairuse_gateway_print_batches_dropped_total", "Fingerprint batches the print index could not take (dropped)."),
    (
        "fairuse_gateway_prints_abandoned_total",
        "Gateway streams that stopped fingerprinting: the fingerprint threads were a minute behind.",
    ),
    ("fairuse_gateway_leases_total", "STT budget slices leased by the gateway."),
    ("fairuse_gateway_leases_held_total", "Gateway streams held because the budget store did not answer."),
    ("fairuse_gateway_budget_stops_total", "Gateway streams stopped because the STT budget ran out."),
    ("fairuse_budget_unrecorded_ms_total", "Milliseconds of forwarded audio a failing budget store never counted."),
    ("fairuse_webhook_deliveries_total", "Webhook delivery attempts, by outcome (delivered, failed, gave_up)."),
    ("fairuse_store_errors_total", "Store failures, by operation (and for requests, whether the outcome is unknown)."),
    ("fairuse_policy_reloads_total", "Policy file reloads, by outcome (ok, refused)."),
    ("fairuse_http_requests_total", "HTTP requests, by route, method and status."),
    ("fairuse_llm_requests_total", "Requests to the OpenAI-compatible classifier endpoint, by outcome."),
    ("fairuse_llm_tokens_total", "Tokens the classifier endpoint reported, by kind (prompt, completion)."),
    ("fairuse_llm_ensemble_routes_total", "Ensemble classifier runs, by who settled them (heuristic, model)."),
];

/// `(name, help)` of every gauge.
pub const GAUGES: &[(&str, &str)] = &[
    ("fairuse_gateway_streams", "Streams open on this replica's gateway."),
    ("fairuse_webhook_outbox_backlog", "Webhook messages still to be delivered (dead letters excluded)."),
];

/// `(name, help)` of every histogram (seconds).
pub const HISTOGRAMS: &[(&str, &str)] = &[
    ("fairuse_classifier_seconds", "Time a classifier run took, in seconds."),
    ("fairuse_webhook_delivery_seconds", "Time a webhook delivery attempt took, in seconds."),
    ("fairuse_http_request_duration_seconds", "HTTP request latency, by route, method and status, in seconds."),
    ("fairuse_llm_request_seconds", "Time a request to the classifier endpoint took, in seconds."),
];

/// Counter series that start at 0, so the alerts in `deploy/prometheus/alerts.yml` see their
/// first increment.
const ZERO_COUNTERS: &[(&str, &[(&str, &str)])] = &[
    ("fairuse_usage_reports_total", &[]),
    ("fairuse_store_errors_total", &[("op", "request"), ("kind", "certain")]),
    ("fairuse_store_errors_total", &[("op", "request"), ("kind", "unknown")]),
    ("fairuse_store_errors_total", &[("op", "after_usage")]),
    ("fairuse_store_errors_total", &[("op", "timer_sweep")]),
    ("fairuse_store_errors_total", &[("op", "claim_jobs")]),
    ("fairuse_classifier_runs_total", &[("outcome", "ok")]),
    ("fairuse_classifier_runs_total", &[("outcome", "demoted")]),
    ("fairuse_classifier_runs_total", &[("outcome", "failed")]),
    ("fairuse_classifier_runs_total", &[("outcome", "abandoned")]),
    ("fairuse_webhook_deliveries_total", &[("outcome", "delivered")]),
    ("fairuse_webhook_deliveries_total", &[("outcome", "failed")]),
    ("fairuse_webhook_deliveries_total", &[("outcome", "gave_up")]),
    ("fairuse_gateway_leases_total", &[]),
    ("fairuse_gateway_leases_held_total", &[]),
    ("fairuse_gateway_budget_stops_total", &[]),
    ("fairuse_print_codes_indexed_total", &[]),
    ("fairuse_gateway_print_batches_dropped_total", &[]),
    ("fairuse_gateway_prints_abandoned_total", &[]),
    ("fairuse_budget_unrecorded_ms_total", &[]),
    ("fairuse_policy_reloads_total", &[("outcome", "ok")]),
    ("fairuse_policy_reloads_total", &[("outcome", "refused")]),
];

/// Describes every metric and registers the zero series. Call once, after installing the recorder.
pub fn register() {
    for &(name, help) in COUNTERS {
        metrics::describe_counter!(name, help);
    }
    for &(name, help) in GAUGES {
        metrics::describe_gauge!(name, help);
    }
    for &(name, help) in HISTOGRAMS {
        metrics::describe_histogram!(name, help);
    }
    for &(name, labels) in ZERO_COUNTERS {
        let labels: Vec<metrics::Label> = labels.iter().map(|&(k, v)| metrics::Label::new(k, v)).collect();
        metrics::counter!(name, labels).increment(0);
    }
    // The open-stream gauge moves by +1/-1, so adding 0 shows it without changing it.
    metrics::gauge!("fairuse_gateway_streams").increment(0.0);
    // Registered without a sample, the histograms render with empty buckets.
    let _ = metrics::histogram!("fairuse_classifier_seconds");
    let _ = metrics::histogram!("fairuse_webhook_delivery_seconds");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.rs` file under `crates/*/src`, concatenated.
    fn workspace_source() -> String {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut text = String::new();
        let mut dirs = vec![crates];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
                let path = entry.path();
                let under_src = path.components().any(|c| c.as_os_str() == "src");
                if path.is_dir() && !path.ends_with("target") {
                    dirs.push(path);
                } else if under_src && path.extension().is_some_and(|e| e == "rs") && !path.ends_with("telemetry.rs") {
                    text.push_str(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        text
    }

    #[test]
    fn every_catalogued_metric_is_emitted_by_some_crate() {
        let source = workspace_source();
        let names = COUNTERS.iter().chain(GAUGES).chain(HISTOGRAMS).map(|&(n, _)| n);
        let missing: Vec<&str> = names.filter(|n| !source.contains(&format!("\"{n}\""))).collect();
        assert!(missing.is_empty(), "catalogued here but emitted nowhere in crates/*/src: {missing:?}");
    }

    #[test]
    fn every_metric_the_crates_emit_is_catalogued() {
        let source = workspace_source();
        let mut emitted = std::collections::BTreeSet::new();
        for opening in ["counter!(\"", "gauge!(\"", "histogram!(\"", "_METRIC: &str = \""] {
            for (at, _) in source.match_indices(opening) {
                let rest = &source[at + opening.len()..];
                emitted.insert(rest.split('"').next().unwrap_or_default().to_owned());
            }
        }
        assert!(emitted.contains("fairuse_usage_reports_total"), "the scan found the emitting code: {emitted:?}");
        let all: Vec<&str> = COUNTERS.iter().chain(GAUGES).chain(HISTOGRAMS).map(|&(n, _)| n).collect();
        let missing: Vec<&String> = emitted.iter().filter(|n| !all.contains(&n.as_str())).collect();
        assert!(missing.is_empty(), "emitted but missing from the catalogue (and its HELP text): {missing:?}");
    }

    #[test]
    fn every_zeroed_series_is_a_catalogued_counter() {
        for (name, _) in ZERO_COUNTERS {
            assert!(COUNTERS.iter().any(|(n, _)| n == name), "{name} is zeroed but not catalogued");
        }
    }
}
