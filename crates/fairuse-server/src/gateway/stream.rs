//! One stream: its state and the select loop over the client, the upstream, the flush timer and
//! the idle timer; leases of STT budget, usage reports, session summaries and print lookups.
//!
//! One file (a little over 600 lines) because it is one state machine: `Stream`'s methods share its
//! fields and the loop.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use fairuse_domain::ids::{Lane, Uid};
use fairuse_domain::pipeline;
use fairuse_domain::prints::DuplicateTracker;
use fairuse_domain::sessions::{DEFAULT_BRIDGE_MS, HashSample, SpeechRuns, StreamSession};
use fairuse_domain::windows::{SpeechAmount, UsageReport};
use serde_json::json;
use tokio_tungstenite::tungstenite;

use super::meter::StreamMeter;
use super::protocol::{Control, Format, error_message, parse_control};
use super::upstream::{UpstreamSocket, connect_upstream, next_upstream, send_upstream, stop_upstream};
use super::{Gateway, GatewaySettings, MAX_PENDING_HASHES, Upstream};
use crate::service::{Service, ServiceResult, UsageAccepted, UserReport};

/// One stream's state.
pub(super) struct Stream {
    gateway: Arc<Gateway>,
    service: Arc<Service>,
    uid: Uid,
    format: Format,
    query: String,
    session_id: String,
    meter: Box<dyn StreamMeter>,
    /// Speech runs and pauses of this stream, for the session summary.
    runs: SpeechRuns,
    /// The session summary as last sent to the store.
    summary: StreamSession,
    /// Sampled fingerprint codes not yet looked up in the print index (policy `[fingerprint]`).
    hashes: Vec<HashSample>,
    /// What this stream's codes found in the print index: its duplicate audio. None when the
    /// stream is not fingerprinted.
    duplicates: Option<DuplicateTracker>,
    /// Sample frames received from the client.
    received_frames: u64,
    /// Bytes of an incomplete sample frame, joined with the next binary frame.
    carry: Vec<u8>,
    /// The current frame's samples (scratch, kept to avoid an allocation per frame).
    pcm: Vec<i16>,
    /// Sample frames (one sample per channel) forwarded upstream.
    forwarded_frames: u64,
    forwarding: bool,
    /// Forwarding is leased in slices of budget: frames up to this count may go upstream before
    /// the stream reports its totals and reads the decision again (0: no lease yet).
    lease_end_frames: u64,
    /// While forwarding is held (a lease could not be granted safely), no new lease is asked for
    /// before this instant; the audio meanwhile is metered, not forwarded.
    lease_retry_at: Option<tokio::time::Instant>,
    /// The last decision read carried an STT budget (throttle/restrict).
    budgeted: bool,
    /// When something last went upstream; a held stream sends `KeepAlive` so the vendor does not
    /// close it for silence.
    last_upstream_send: tokio::time::Instant,
    /// A usage report still running after its timeout, with the totals it carries: no second
    /// report starts until it ends (a hanging store must not collect a pile of them).
    report_in_flight: Option<(ReportTask, SessionTotals)>,
    exhausted_sent: bool,
    /// The last totals reported, to skip reports that would change nothing.
    reported: Option<SessionTotals>,
}

/// The cumulative totals of this stream's session that a usage report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SessionTotals {
    speech_ms: i64,
    /// Audio forwarded to the STT vendor.
    stt_ms: i64,
}

enum Next {
    Continue,
    /// The client asked to close: wait for the upstream to finish, then end.
    Closing,
    End,
}

impl Stream {
    pub(super) fn new(gateway: Arc<Gateway>, service: Arc<Service>, uid: Uid, format: Format, query: String) -> Stream {
        // The switch is read when the stream opens: a policy change applies to new streams.
        let fingerprinting = service.policy().fingerprint.enabled;
        let meter = if fingerprinting {
            gateway.meters.new_fingerprinting_meter(format.sample_rate, format.channels)
        } else {
            gateway.meters.new_meter(format.sample_rate, format.channels)
        };
        let runs = SpeechRuns::new(meter.window_ms(), DEFAULT_BRIDGE_MS);
        let session_id = uuid::Uuid::new_v4().to_string();
        let summary = StreamSession::open(session_id.clone(), service.now());
        let duplicates = fingerprinting.then(|| DuplicateTracker::new(uid.as_str(), summary.started_at));
        Stream {
            gateway,
            service,
            uid,
            format,
            query,
            session_id,
            meter,
            runs,
            summary,
            hashes: Vec::new(),
            duplicates,
            received_frames: 0,
            carry: Vec::new(),
            pcm: Vec::new(),
            forwarded_frames: 0,
            forwarding: true,
            lease_end_frames: 0,
            lease_retry_at: None,
            budgeted: false,
            last_upstream_send: tokio::time::Instant::now(),
            report_in_flight: None,
            exhausted_sent: false,
            reported: None,
        }
    }

    fn settings(&self) -> &GatewaySettings {
        &self.gateway.settings
    }

    fn stt_ms(&self) -> i64 {
        (self.forwarded_frames.saturating_mul(1000) / u64::from(self.format.sample_rate)) as i64
    }

    pub(super) async fn run(mut self, mut client: WebSocket) {
        metrics::gauge!("fairuse_gateway_streams").increment(1.0);
        tracing::debug!(uid = %self.uid, session_id = %self.session_id, "stream opened");
        self.renew_lease(&mut client).await;
        let idle = self.settings().idle_timeout;
        let mut last_heard = tokio::time::Instant::now();
        let mut upstream = match (&self.settings().upstream, self.forwarding) {
            (Upstream::Url { url, api_key, tls }, true) => {
                let tls = tls.clone();
                match connect_upstream(url, api_key.as_deref(), tls, &self.query, self.settings().outbound_timeout)
                    .await
                {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(uid = %self.uid, error = %e, "upstream connect failed");
                        let _ = client
                            .send(error_message("UpstreamUnavailable", "the speech-to-text upstream is unavailable"))
                            .await;
                        let _ = client.send(close(1011, "upstream unavailable")).await;
                        metrics::gauge!("fairuse_gateway_streams").decrement(1.0);
                        return;
                    }
                }
            }
            _ => None,
        };
        let period = self.settings().flush_interval;
        let mut flush = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut closing_deadline: Option<tokio::time::Instant> = None;
        // One timer for the idle limit, armed for `last_heard + idle` and moved only when it
        // fires early: a frame just records when it was heard. (A fresh `sleep_until` per loop
        // pass registered and removed a timer-wheel entry for every audio frame.)
        let idle_timer = tokio::time::sleep_until(last_heard + idle);
        tokio::pin!(idle_timer);
        loop {
            let deadline = async {
                match closing_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = client.recv(), if closing_deadline.is_none() => {
                    let outcome = self.on_client(msg, &mut client, &mut upstream).await;
                    // Idle time counts from when the message was handled: waiting on the store
                    // inside the handler is the gateway's time, not the client's silence.
                    last_heard = tokio::time::Instant::now();
                    match outcome {
                        Next::Continue => {}
                        Next::Closing => {
                            if upstream.is_none() {
                                let _ = client.send(close(1000, "")).await;
                                break;
                            }
                            closing_deadline = Some(tokio::time::Instant::now() + self.settings().close_timeout);
                        }
                        Next::End => break,
                    }
                }
                msg = next_upstream(&mut upstream) => {
                    match msg {
                        Some(Ok(tungstenite::Message::Text(t))) => {
                            if client.send(Message::Text(t.as_str().into())).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(tungstenite::Message::Binary(b))) => {
                            if client.send(Message::Binary(b)).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            upstream = None;
                            if closing_deadline.is_some() {
                                let _ = client.send(close(1000, "")).await;
                                break;
                            }
                            if self.forwarding {
                                let _ = client.send(error_message("UpstreamClosed", "the speech-to-text upstream closed the stream")).await;
                                let _ = client.send(close(1011, "upstream closed")).await;
                                break;
                            }
                            // Forwarding had stopped (budget) and the upstream finished: keep metering.
                        }
                    }
                }
                _ = flush.tick() => {
                    // A stage can change mid-stream (a verdict, an admin): the lease is renewed
                    // on the clock too, not only when it runs out.
                    let began = tokio::time::Instant::now();
                    self.flush().await;
                    self.index_prints().await;
                    self.record_session(false);
                    if self.renew_lease(&mut client).await == Lease::Stopped {
                        stop_upstream(&mut upstream, self.settings().outbound_timeout).await;
                    }
                    last_heard += began.elapsed();
                }
                _ = &mut idle_timer, if closing_deadline.is_none() => {
                    if last_heard + idle > tokio::time::Instant::now() {
                        // Heard from since the timer was armed: not idle yet.
                        idle_timer.as_mut().reset(last_heard + idle);
                        continue;
                    }
                    // A client that went silent without closing (a dead connection, with no
                    // upstream to notice it) would hold a stream slot forever.
                    let why = format!("no audio or KeepAlive for {} s; closing the stream", idle.as_secs());
                    let _ = client.send(error_message("IdleTimeout", &why)).await;
                    let _ = client.send(close(1000, "idle")).await;
                    break;
                }
                _ = deadline => {
                    let _ = client.send(close(1000, "")).await;
                    break;
                }
            }
        }
        if let Some(mut up) = upstream {
            let _ = tokio::time::timeout(self.settings().outbound_timeout, up.close(None)).await;
        }
        // The last report: collect one still running (so this one is not skipped for it), then
        // report the final totals.
        if let Some((handle, carried)) = self.report_in_flight.take()
            && let Ok(done) = tokio::time::timeout(self.settings().outbound_timeout, handle).await
        {
            self.report_done(done, carried);
        }
        self.flush().await;
        self.settle_prints().await;
        self.index_prints().await;
        self.record_session(true);
        metrics::gauge!("fairuse_gateway_streams").decrement(1.0);
        tracing::debug!(uid = %self.uid, session_id = %self.session_id, speech_ms = self.meter.speech_ms(), stt_ms = self.stt_ms(), "stream closed");
    }

    async fn on_client(
        &mut self,
        msg: Option<Result<Message, axum::Error>>,
        client: &mut WebSocket,
        upstream: &mut Option<UpstreamSocket>,
    ) -> Next {
        let timeout = self.settings().outbound_timeout;
        match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Next::End,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Next::Continue,
            Some(Ok(Message::Binary(data))) => {
                if data.len() > self.settings().max_frame_bytes {
                    let msg = format!(
                        "audio frame of {} bytes is larger than the {} bytes allowed; it was dropped",
                        data.len(),
                        self.settings().max_frame_bytes
                    );
                    return reply(client, error_message("FrameTooLarge", &msg)).await;
                }
                let whole = self.take_whole_frames(data);
                if whole.is_empty() {
                    return Next::Continue;
                }
                self.pcm.clear();
                self.pcm.extend(whole.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                let runs = &mut self.runs;
                self.meter.push(&self.pcm, &mut |is_speech| runs.observe(is_speech));
                if self.hashes.len() < MAX_PENDING_HASHES {
                    self.meter.take_hashes(&mut self.hashes);
                    self.hashes.truncate(MAX_PENDING_HASHES);
                }
                self.received_frames += (whole.len() / self.block_align()) as u64;
                let align = self.block_align();
                // Shared, not copied: each part sent upstream is a view of the client's frame.
                let mut rest = whole;
                while self.forwarding && !rest.is_empty() && upstream.is_some() {
                    if self.forwarded_frames >= self.lease_end_frames {
                        if self.lease_retry_at.is_some_and(|t| tokio::time::Instant::now() < t) {
                            self.keep_upstream_alive(upstream).await;
                            break; // held: metered above, not forwarded
                        }
                        // The lease is used up: report what was forwarded, then lease the next
                        // slice (or stop). Audio past the lease waits for the answer.
                        self.flush().await;
                        match self.renew_lease(client).await {
                            Lease::Granted => {}
                            Lease::Held => {
                                self.keep_upstream_alive(upstream).await;
                                break;
                            }
                            Lease::Off => break,
                            Lease::Stopped => stop_upstream(upstream, timeout).await,
                        }
                        continue;
                    }
                    let room = usize::try_from(self.lease_end_frames - self.forwarded_frames).unwrap_or(usize::MAX);
                    let take = rest.len().min(room.saturating_mul(align));
                    let part = rest.split_to(take);
                    let Some(up) = upstream.as_mut() else { break };
                    if let Err(e) = send_upstream(up, tungstenite::Message::Binary(part), timeout).await {
                        tracing::warn!(uid = %self.uid, error = %e, "forwarding audio upstream failed");
                        *upstream = None;
                        let _ = client.send(error_message("UpstreamError", "the speech-to-text upstream failed")).await;
                        let _ = client.send(close(1011, "upstream failed")).await;
                        return Next::End;
                    }
                    self.forwarded_frames += (take / align) as u64;
                    self.last_upstream_send = tokio::time::Instant::now();
                }
                Next::Continue
            }
            Some(Ok(Message::Text(text))) => match parse_control(text.as_str()) {
                Err(why) => reply(client, error_message("SchemaError", &why)).await,
                Ok(control) => {
                    if let Some(up) = upstream.as_mut()
                        && let Err(e) =
                            send_upstream(up, tungstenite::Message::Text(text.as_str().into()), timeout).await
                    {
                        tracing::warn!(uid = %self.uid, error = %e, "forwarding a control message upstream failed");
                        *upstream = None;
                    }
                    if control == Control::CloseStream { Next::Closing } else { Next::Continue }
                }
            },
        }
    }

    /// While held, a `KeepAlive` when nothing went upstream for 2 s keeps the vendor from closing
    /// the stream for lack of audio (Deepgram closes after 10 s).
    async fn keep_upstream_alive(&mut self, upstream: &mut Option<UpstreamSocket>) {
        let Some(up) = upstream.as_mut() else { return };
        if self.last_upstream_send.elapsed() < Duration::from_secs(2) {
            return;
        }
        let msg = tungstenite::Message::Text(r#"{"type":"KeepAlive"}"#.into());
        if send_upstream(up, msg, self.settings().outbound_timeout).await.is_ok() {
            self.last_upstream_send = tokio::time::Instant::now();
        }
    }

    fn block_align(&self) -> usize {
        2 * usize::from(self.format.channels)
    }

    /// The whole sample frames of `carry + data`; the remainder waits for the next frame. The
    /// usual frame (nothing carried, whole samples) is returned as it came, without a copy.
    fn take_whole_frames(&mut self, data: tungstenite::Bytes) -> tungstenite::Bytes {
        let align = self.block_align();
        if self.carry.is_empty() && data.len().is_multiple_of(align) {
            return data;
        }
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(&data);
        let whole = joined.len() - joined.len() % align;
        self.carry = joined.split_off(whole);
        joined.into()
    }

    /// Reports the cumulative totals of this session; idempotent, so a retry or a repeated
    /// flush never counts twice. A failure is logged: the next flush reports the same totals.
    async fn flush(&mut self) {
        let totals = SessionTotals { speech_ms: self.meter.speech_ms(), stt_ms: self.stt_ms() };
        if self.reported == Some(totals) {
            return;
        }
        let report = UsageReport {
            lane: Lane::Realtime,
            amount: SpeechAmount::Cumulative { session_id: self.session_id.clone(), total_ms: totals.speech_ms },
            at: None,
            idempotency_key: None,
            stt_ms: totals.stt_ms,
        };
        // A report still running from an earlier flush: let it finish first.
        if let Some((handle, _)) = &self.report_in_flight
            && !handle.is_finished()
        {
            return;
        }
        if let Some((handle, carried)) = self.report_in_flight.take() {
            self.report_done(handle.await, carried);
            if self.reported == Some(totals) {
                return;
            }
        }
        // Spawned, so a timeout here never cancels the report between its meter write and its
        // budget update: a slow report still completes (and is collected by a later flush), and a
        // repeat of the same cumulative totals is then a duplicate that adds nothing.
        let service = self.service.clone();
        let items = vec![UserReport { uid: self.uid.clone(), report }];
        let mut handle = tokio::spawn(async move { service.record_usage(items).await });
        match tokio::time::timeout(self.settings().outbound_timeout, &mut handle).await {
            Ok(done) => self.report_done(done, totals),
            Err(_) => {
                tracing::warn!(uid = %self.uid, "stream usage report timed out; collected at a later flush");
                self.report_in_flight = Some((handle, totals));
            }
        }
    }

    fn report_done(
        &mut self,
        done: Result<ServiceResult<UsageAccepted>, tokio::task::JoinError>,
        totals: SessionTotals,
    ) {
        match done {
            Ok(Ok(_)) => self.reported = Some(totals),
            Ok(Err(e)) => {
                tracing::warn!(uid = %self.uid, error = %e, "stream usage report failed; retried at the next flush")
            }
            Err(e) => tracing::error!(uid = %self.uid, error = %e, "stream usage report task failed"),
        }
    }

    /// Records the session summary for the classifier (duration, speech, forwarded audio, longest
    /// continuous speech, pauses); `closed` at the end of the stream. Written in the background,
    /// off the audio path: the summary is for the classifier, and a slow store must not stall the
    /// stream. Stores keep the most advanced snapshot, so writes landing out of order are
    /// harmless; an unchanged snapshot and an empty stream are not written.
    /// At the end of a stream: hands the meter's last audio to the fingerprint and waits (at
    /// most the outbound timeout) for the codes still being computed off the frame path, so the
    /// last seconds of a session are looked up too. A real-time stream leaves one short batch; a
    /// client that sent faster than real time may leave more.
    async fn settle_prints(&mut self) {
        if self.duplicates.is_none() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.settings().outbound_timeout;
        self.meter.flush_prints();
        while self.meter.prints_pending() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.meter.flush_prints();
        }
    }

    /// Looks the codes sampled since the last call up in the print index, then adds them, and
    /// feeds what they found to the stream's duplicate tracker. A batch the index cannot take is
    /// dropped (logged and counted): the stream and its metering go on either way.
    async fn index_prints(&mut self) {
        let Some(tracker) = self.duplicates.as_mut() else { return };
        // Codes arrive only with speech, and the last ones only when the meter is finished; take
        // whatever has completed.
        self.meter.take_hashes(&mut self.hashes);
        self.hashes.truncate(MAX_PENDING_HASHES);
        if self.hashes.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.hashes);
        let started_at = self.summary.started_at;
        let call = self.service.match_prints(&self.uid, &self.session_id, started_at, &batch);
        match tokio::time::timeout(self.gateway.settings.outbound_timeout, call).await {
            Ok(Ok(found)) => tracker.add(&batch, &found),
            Ok(Err(e)) => {
                metrics::counter!("fairuse_gateway_print_batches_dropped_total").increment(1);
                tracing::warn!(uid = %self.uid, error = %e, codes = batch.len(), "fingerprint batch not indexed");
            }
            Err(_) => {
                metrics::counter!("fairuse_gateway_print_batches_dropped_total").increment(1);
                tracing::warn!(uid = %self.uid, codes = batch.len(), "fingerprint batch timed out");
            }
        }
    }

    fn record_session(&mut self, closed: bool) {
        let mut s = self.summary.clone();
        if let Some(tracker) = &self.duplicates {
            let d = tracker.summary();
            s.duplicate_own_ms = d.own_ms;
            s.duplicate_other_ms = d.other_ms;
            s.duplicate_of = d.matches;
        }
        s.updated_at = self.service.now().max(s.started_at);
        s.duration_ms = (self.received_frames.saturating_mul(1000) / u64::from(self.format.sample_rate)) as i64;
        s.speech_ms = self.meter.speech_ms();
        s.stt_ms = self.stt_ms();
        s.set_shape(&self.runs.shape());
        s.closed = closed;
        let unchanged = StreamSession { updated_at: self.summary.updated_at, ..s.clone() } == self.summary;
        if s.duration_ms == 0 || unchanged {
            return;
        }
        self.summary = s.clone();
        let (service, uid, timeout) = (self.service.clone(), self.uid.clone(), self.settings().outbound_timeout);
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, service.record_stream_session(&uid, s)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(%uid, error = %e, "stream session summary not recorded"),
                Err(_) => tracing::warn!(%uid, "stream session summary timed out"),
            }
        });
    }

    /// Reads the decision and leases the next slice of STT budget: forwarding may go on for
    /// `min(policy budget.slice, remaining budget)` of audio before the stream reports and asks
    /// again, so a stream overshoots a budget by at most one slice however fast its client sends.
    /// When STT is not allowed it stops forwarding for good and tells the client once.
    ///
    /// A lease is only as safe as the report before it: when the forwarded audio could not be
    /// reported, or the decision could not be read, a user with a budget (throttle/restrict) is
    /// held under `budget.fail_closed_when_store_down` (audio metered, not forwarded, asked again
    /// a second later), and anyone else gets one more slice (fail open: no budget to overshoot).
    async fn renew_lease(&mut self, client: &mut WebSocket) -> Lease {
        if !self.forwarding {
            return Lease::Off;
        }
        let policy = self.service.policy();
        let unreported = self.reported.map_or(0, |r| r.stt_ms) != self.stt_ms();
        let decision = if unreported {
            Err("the forwarded audio could not be reported".to_owned())
        } else {
            let call = self.service.decision_with_health(&self.uid);
            match tokio::time::timeout(self.settings().outbound_timeout, call).await {
                Ok(Ok(d)) => Ok(d),
                Ok(Err(e)) => Err(format!("decision failed: {e}")),
                Err(_) => Err("decision timed out".to_owned()),
            }
        };
        let action = pipeline::lease(decision.as_ref().ok(), self.budgeted, &policy);
        if let Ok(h) = &decision {
            self.budgeted = h.decision.stt_budget.is_some();
        }
        match (action, &decision) {
            (pipeline::Lease::Hold, Err(why)) => {
                tracing::warn!(uid = %self.uid, %why, "budgeted stream held: nothing forwarded until the store answers");
            }
            (pipeline::Lease::Hold, Ok(_)) => tracing::warn!(uid = %self.uid, "budget store unavailable; stream held"),
            (pipeline::Lease::Grant { .. }, Err(why)) => {
                tracing::warn!(uid = %self.uid, %why, "leasing one more slice (no budget to protect)");
            }
            _ => {}
        }
        let decision = match action {
            pipeline::Lease::Hold => {
                metrics::counter!("fairuse_gateway_leases_held_total").increment(1);
                self.lease_end_frames = self.forwarded_frames;
                self.lease_retry_at = Some(tokio::time::Instant::now() + LEASE_RETRY);
                return Lease::Held;
            }
            pipeline::Lease::Grant { ms } => {
                if decision.is_ok() {
                    self.lease_retry_at = None;
                }
                self.lease(ms);
                return Lease::Granted;
            }
            pipeline::Lease::Stop => match decision {
                Ok(h) => h.decision,
                Err(_) => return Lease::Held, // unreachable: a stop needs a decision that denies
            },
        };
        self.forwarding = false;
        if !self.exhausted_sent {
            self.exhausted_sent = true;
            let resets_at = decision.stt_budget.as_ref().map(|b| b.resets_at);
            let msg = json!({
                "type": "FairUse",
                "event": "stt_budget_exhausted",
                "resets_at": resets_at,
                "case_ref": decision.case_ref,
            });
            metrics::counter!("fairuse_gateway_budget_stops_total").increment(1);
            let _ = client.send(Message::Text(msg.to_string().into())).await;
            // Deepgram SDKs drop message types they do not know (the Python SDK 7 hands the app
            // `None` for the event above), so the same news follows as an error they can read.
            let mut notice = "transcription is paused: today's speech-to-text allowance is used up".to_owned();
            if let Some(b) = &decision.stt_budget {
                notice.push_str(&format!("; it resets at {}", b.resets_at.to_rfc3339()));
            }
            if let Some(case) = &decision.case_ref {
                notice.push_str(&format!(" (case {case})"));
            }
            notice.push_str(". Audio is still accepted and metered.");
            let _ = client.send(error_message("SttBudgetExhausted", &notice)).await;
        }
        Lease::Stopped
    }

    /// Lets `ms` more audio go upstream from here (at least one sample frame).
    fn lease(&mut self, ms: i64) {
        let frames = (ms.max(0) as u64).saturating_mul(u64::from(self.format.sample_rate)) / 1000;
        self.lease_end_frames = self.forwarded_frames.saturating_add(frames.max(1));
        metrics::counter!("fairuse_gateway_leases_total").increment(1);
    }
}

/// A usage report running in its own task.
type ReportTask = tokio::task::JoinHandle<ServiceResult<UsageAccepted>>;

/// What renewing a lease decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lease {
    Granted,
    /// Not granted for now (the report or the decision failed for a budgeted user).
    Held,
    /// STT is not allowed: forwarding stopped now, for the rest of the stream.
    Stopped,
    /// Forwarding had already stopped.
    Off,
}

/// How long a held stream waits before asking for a lease again.
const LEASE_RETRY: Duration = Duration::from_secs(1);

async fn reply(client: &mut WebSocket, msg: Message) -> Next {
    if client.send(msg).await.is_ok() { Next::Continue } else { Next::End }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}
