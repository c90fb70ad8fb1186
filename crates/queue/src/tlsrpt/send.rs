//! Sending the finished days' reports (RFC 8460 §5): for each domain with
//! results, its `_smtp._tls` TXT record names where the report goes; a
//! `mailto:` address gets it as a message queued in our own spool (so it
//! is retried, and bounced, like any other mail), an `https:` URL gets it
//! by POST.

use std::sync::Arc;

use base64::Engine as _;
use postern_proto::{Mailbox, ReversePath};
use std::collections::BTreeSet;

use postern_relay::mta_sts::PolicyFetcher;
use postern_relay::{ResolveError, Resolver};

use super::{DateRange, Report, ReportUri, TlsRptRecord, TlsRptRecorder, report_file_name};
use crate::dkim::DkimSigner;
use crate::report::rfc5322_date;
use crate::{Envelope, QueueId, RecipientState, Store};

/// Who reports, as the report and its mail say.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReportSettings {
    /// `organization-name` (§4.4).
    pub organization_name: String,
    /// `contact-info` (§4.4): an address or URL.
    pub contact_info: String,
    /// Our host name: the report mail's `TLS-Report-Submitter` and the
    /// file name's submitter (§5.3).
    pub submitter: String,
    /// The report mail's sender (`From` and the envelope's reverse-path).
    pub from: Mailbox<'static>,
    /// Signs the report mail. Receivers ignore mailed reports without a
    /// valid DKIM signature by the reporting domain (RFC 8460 §3); HTTPS
    /// reports need none.
    pub dkim: Option<Arc<DkimSigner>>,
}

impl ReportSettings {
    /// Settings naming `submitter` (our host name), from
    /// `tlsrpt-noreply@<submitter>`.
    pub fn new(submitter: &str) -> Result<Self, postern_proto::AddressError> {
        let from = Mailbox::parse(&format!("tlsrpt-noreply@{submitter}"))?.into_owned();
        Ok(Self {
            organization_name: submitter.to_owned(),
            contact_info: format!("postmaster@{submitter}"),
            submitter: submitter.to_owned(),
            from,
            dkim: None,
        })
    }

    /// These settings with mailed reports signed by `signer`.
    #[must_use]
    pub fn with_dkim(mut self, signer: DkimSigner) -> Self {
        self.dkim = Some(Arc::new(signer));
        self
    }

    /// The report of `day`'s `log` for `domain`, with a report id unique
    /// to the day, domain and submitter.
    pub fn report(&self, log: &super::TlsRptLog, domain: &str, day: u64) -> Option<Report> {
        let id = format!("{day}.{domain}@{}", self.submitter);
        log.report(
            domain,
            &self.organization_name,
            &self.contact_info,
            &id,
            DateRange::utc_day(day),
        )
    }
}

/// What an operator checks (`postern-mta check`): who the reports are
/// from and, for mailed ones, the DKIM record to publish or that they go
/// unsigned.
impl std::fmt::Display for ReportSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reports from {} ({})", self.from, self.organization_name)?;
        match &self.dkim {
            Some(d) => write!(
                f,
                "; mailed ones signed {}: publish TXT {} \"{}\"",
                d.algorithm(),
                d.record_name(),
                d.txt_record()
            ),
            None => write!(
                f,
                "; mailed ones unsigned (no dkim_key): receivers ignore them (RFC 8460 §3)"
            ),
        }
    }
}

/// The `[tls_report]` table of a configuration file, as written: who the
/// reports say they are from, and the DKIM key mailed reports are signed
/// with (RFC 8460 §3: receivers ignore them unsigned).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsReportTable {
    /// `organization-name` (default: the host name).
    pub organization_name: Option<String>,
    /// `contact-info` (default: `postmaster@` the host name).
    pub contact_info: Option<String>,
    /// The PEM private key (RSA or Ed25519) that signs mailed reports.
    pub dkim_key: Option<std::path::PathBuf>,
    /// The DKIM selector (`s=`); required with `dkim_key`.
    pub dkim_selector: Option<String>,
    /// The signing domain (`d=`; default: the host name, the domain of
    /// the reports' `From`).
    pub dkim_domain: Option<String>,
}

/// A field of `[tls_report]` that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
#[non_exhaustive]
pub struct TlsReportTableError {
    /// The field, e.g. `dkim_key`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl TlsReportTableError {
    /// The field with its table, as a configuration error names it:
    /// `tls_report.dkim_key`.
    pub fn field(&self) -> String {
        format!("tls_report.{}", self.field)
    }
}

impl TlsReportTable {
    /// The settings for a server called `hostname`, `None` when that is
    /// no mail domain (reports are then not sent). The key is read now, a
    /// relative path resolved with `resolve`; an unreadable or unusable
    /// key, or a key without a selector, is an error naming the field.
    pub fn settings(
        &self,
        hostname: &str,
        resolve: impl Fn(&std::path::Path) -> std::path::PathBuf,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<Option<ReportSettings>, TlsReportTableError> {
        let bad = |field, message: String| TlsReportTableError { field, message };
        let Ok(mut settings) = ReportSettings::new(hostname) else {
            return Ok(None);
        };
        if let Some(o) = &self.organization_name {
            settings.organization_name.clone_from(o);
        }
        if let Some(c) = &self.contact_info {
            settings.contact_info.clone_from(c);
        }
        match (&self.dkim_key, &self.dkim_selector) {
            (None, None) => {}
            (None, Some(_)) => return Err(bad("dkim_selector", "given without dkim_key".into())),
            (Some(_), None) => {
                return Err(bad("dkim_selector", "required with dkim_key".into()));
            }
            (Some(key), Some(selector)) => {
                let domain = self.dkim_domain.as_deref().unwrap_or(hostname);
                let signer = DkimSigner::from_file(domain, selector, &resolve(key), provider)
                    .map_err(|e| match e {
                        crate::dkim::DkimError::Name {
                            what: "selector", ..
                        } => bad("dkim_selector", e.to_string()),
                        crate::dkim::DkimError::Name { .. } => bad("dkim_domain", e.to_string()),
                        other => bad("dkim_key", other.to_string()),
                    })?;
                settings = settings.with_dkim(signer);
            }
        }
        Ok(Some(settings))
    }
}

/// Where one report went, or why it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SentReport {
    /// Queued as a message to the address.
    Queued {
        /// The policy domain.
        domain: String,
        /// The `mailto:` address.
        to: String,
        /// The queue id.
        id: QueueId,
    },
    /// POSTed; the server answered with this 2xx status.
    Posted {
        /// The policy domain.
        domain: String,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The domain publishes no (valid) TLS-RPT record: nothing is sent.
    NoRecord {
        /// The policy domain.
        domain: String,
        /// Why (the lookup's or the parser's error, or "none").
        why: String,
    },
    /// Sending to one URI failed (logged; tried again at the next pass).
    Failed {
        /// The policy domain.
        domain: String,
        /// The URI.
        uri: String,
        /// Why.
        why: String,
    },
}

impl SentReport {
    /// What was done, as the day's progress records it (`domain uri`, or
    /// the domain alone when it publishes no record).
    pub fn key(&self) -> String {
        match self {
            SentReport::Queued { domain, to, .. } => format!("{domain} mailto:{to}"),
            SentReport::Posted { domain, url, .. } => format!("{domain} {url}"),
            SentReport::NoRecord { domain, .. } => domain.clone(),
            SentReport::Failed { domain, uri, .. } => format!("{domain} {uri}"),
        }
    }
}

/// How many days after a day ends its reports are still tried.
pub const RETRY_DAYS: u64 = 3;

/// Sends the reports of finished days.
pub struct ReportSender {
    settings: ReportSettings,
    store: Arc<dyn Store>,
    resolver: Arc<dyn Resolver>,
    https: Option<PolicyFetcher>,
}

impl std::fmt::Debug for ReportSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportSender")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ReportSender {
    /// A sender queuing mail in `store`, finding records with `resolver`
    /// and POSTing with `https` (`None`: `https:` URIs are skipped, as
    /// failures).
    pub fn new(
        settings: ReportSettings,
        store: Arc<dyn Store>,
        resolver: Arc<dyn Resolver>,
        https: Option<PolicyFetcher>,
    ) -> Self {
        Self {
            settings,
            store,
            resolver,
            https,
        }
    }

    /// Sends every finished day's reports, then forgets the day. A day
    /// whose log cannot be read stays for the next call.
    pub async fn send_finished(&self, recorder: &TlsRptRecorder) -> Vec<SentReport> {
        let mut out = Vec::new();
        let days = match recorder.finished_days() {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(dir = %recorder.dir().display(), error = %e, "TLS-RPT: cannot list the logs");
                return out;
            }
        };
        for day in days {
            let log = match TlsRptRecorder::load(recorder.dir(), day) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "TLS-RPT: log unreadable; kept");
                    continue;
                }
            };
            let mut done = recorder.sent(day);
            let mut retry = false;
            for domain in log.domains() {
                if done.contains(domain) {
                    continue;
                }
                let Some(report) = self.settings.report(&log, domain, day) else {
                    continue;
                };
                let sent = self.send(domain, day, &report, recorder.now(), &done).await;
                for s in &sent {
                    match s {
                        SentReport::Failed { .. } => retry = true,
                        s => {
                            done.insert(s.key());
                        }
                    }
                }
                out.extend(sent);
            }
            // A failed send (a POST, a TXT lookup that timed out) is tried
            // at the next pass, the others not again, for up to
            // RETRY_DAYS after the day ended.
            let expired = recorder.now() > day + 86_400 * (1 + RETRY_DAYS);
            let kept = if retry && !expired {
                recorder.keep_sent(day, &done)
            } else {
                recorder.retire(day)
            };
            if let Err(e) = kept {
                tracing::error!(error = %e, "TLS-RPT: cannot update a day's log");
            }
        }
        for s in &out {
            tracing::info!(report = ?s, "TLS-RPT report");
        }
        out
    }

    /// Sends `report` to every `rua` of `domain`'s TLS-RPT record but
    /// those whose [`SentReport::key`] is in `done`.
    pub async fn send(
        &self,
        domain: &str,
        day: u64,
        report: &Report,
        now: u64,
        done: &BTreeSet<String>,
    ) -> Vec<SentReport> {
        let name = format!("_smtp._tls.{domain}");
        let record = match self.resolver.txt(&name).await {
            Ok(txts) => TlsRptRecord::select(txts.iter().map(String::as_str))
                .map_err(|e| e.to_string())
                .and_then(|r| r.ok_or_else(|| "no v=TLSRPTv1 record".to_owned())),
            Err(ResolveError::Transient(why)) => {
                return vec![SentReport::Failed {
                    domain: domain.to_owned(),
                    uri: name,
                    why,
                }];
            }
            Err(e) => Err(e.to_string()),
        };
        let record = match record {
            Ok(r) => r,
            Err(why) => {
                return vec![SentReport::NoRecord {
                    domain: domain.to_owned(),
                    why,
                }];
            }
        };
        let gzip = match report.to_gzip() {
            Ok(g) => g,
            Err(e) => {
                return vec![SentReport::Failed {
                    domain: domain.to_owned(),
                    uri: String::new(),
                    why: e.to_string(),
                }];
            }
        };
        let mut out = Vec::new();
        for uri in record.rua() {
            let key = match uri {
                ReportUri::Mail(to) => format!("{domain} mailto:{to}"),
                ReportUri::Https(url) => format!("{domain} {url}"),
            };
            if done.contains(&key) {
                continue;
            }
            let sent = match uri {
                ReportUri::Mail(to) => self
                    .queue_mail(domain, day, report, &gzip, to, now)
                    .map(|id| SentReport::Queued {
                        domain: domain.to_owned(),
                        to: to.clone(),
                        id,
                    })
                    .map_err(|why| (to.clone(), why)),
                ReportUri::Https(url) => match &self.https {
                    Some(client) => client
                        .post(url, "application/tlsrpt+gzip", gzip.clone())
                        .await
                        .map(|status| SentReport::Posted {
                            domain: domain.to_owned(),
                            url: url.clone(),
                            status,
                        })
                        .map_err(|e| (url.clone(), e.to_string())),
                    None => Err((url.clone(), "no HTTPS client configured".to_owned())),
                },
            };
            out.push(sent.unwrap_or_else(|(uri, why)| SentReport::Failed {
                domain: domain.to_owned(),
                uri,
                why,
            }));
        }
        out
    }

    fn queue_mail(
        &self,
        domain: &str,
        day: u64,
        report: &Report,
        gzip: &[u8],
        to: &str,
        now: u64,
    ) -> Result<QueueId, String> {
        let rcpt = Mailbox::parse(to).map_err(|e| e.to_string())?.into_owned();
        let id = self.store.new_id();
        let mut bytes = self.render(domain, day, report, gzip, to, now, &id);
        if let Some(dkim) = &self.settings.dkim {
            bytes = dkim.sign(&bytes, now).map_err(|e| format!("DKIM: {e}"))?;
        }
        let mut env = Envelope::new(id.clone(), ReversePath::Mailbox(self.settings.from.clone()));
        env.arrival = now;
        env.recipients.push(RecipientState::pending(rcpt, false));
        self.store.put(&env, &bytes).map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// The report mail of §5.3: `multipart/report; report-type="tlsrpt"`,
    /// a short text part and the gzipped JSON as
    /// `application/tlsrpt+gzip`. Written here rather than with a MIME
    /// builder: the layout is fixed, every header is ASCII, and the DSN
    /// renderer of this crate already writes its reports the same way.
    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        domain: &str,
        day: u64,
        report: &Report,
        gzip: &[u8],
        to: &str,
        now: u64,
        id: &QueueId,
    ) -> Vec<u8> {
        let s = &self.settings;
        let boundary = format!("tlsrpt-{id}");
        let file = report_file_name(&s.submitter, domain, day, day + 86_399, id.as_str());
        let b64 = base64::engine::general_purpose::STANDARD.encode(gzip);
        let mut m = String::new();
        for line in [
            format!("From: <{}>", s.from),
            format!("To: <{to}>"),
            format!("Date: {}", rfc5322_date(now)),
            format!(
                "Subject: Report Domain: {domain} Submitter: {} Report-ID: <{}>",
                s.submitter, report.report_id
            ),
            format!("Message-ID: <{id}@{}>", s.submitter),
            format!("TLS-Report-Domain: {domain}"),
            format!("TLS-Report-Submitter: {}", s.submitter),
            // RFC 8460 §3: a report goes despite TLS failures. RFC 8689
            // §4.1's field waives the recipient's DANE and MTA-STS
            // policies for this message (the runner reads it); TLS is
            // still tried, and the operator's own rules still apply.
            "TLS-Required: No".to_owned(),
            "MIME-Version: 1.0".to_owned(),
            format!(
                "Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\""
            ),
            String::new(),
            format!("--{boundary}"),
            "Content-Type: text/plain; charset=us-ascii".to_owned(),
            String::new(),
            format!(
                "This is an aggregate TLS report from {} for {domain}.",
                s.submitter
            ),
            String::new(),
            format!("--{boundary}"),
            "Content-Type: application/tlsrpt+gzip".to_owned(),
            "Content-Transfer-Encoding: base64".to_owned(),
            format!("Content-Disposition: attachment; filename=\"{file}\""),
            String::new(),
        ] {
            m.push_str(&line);
            m.push_str("\r\n");
        }
        for chunk in b64.as_bytes().chunks(76) {
            m.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            m.push_str("\r\n");
        }
        m.push_str(&format!("--{boundary}--\r\n"));
        m.into_bytes()
    }
}

/// Sends the finished days' reports now and then every `every`, for ever
/// (spawn it; it ends with the runtime).
pub async fn run_reports(
    sender: ReportSender,
    recorder: Arc<TlsRptRecorder>,
    every: std::time::Duration,
) {
    loop {
        sender.send_finished(&recorder).await;
        tokio::time::sleep(every).await;
    }
}

/// The pending reports under `dir` (today's, by `now`) as a JSON array, a
/// report per recipient domain, as `settings` write them (`postern-mta
/// tls-report`). A log that cannot be read is an error naming its file.
pub fn pending_json(
    dir: &std::path::Path,
    settings: &ReportSettings,
    now: u64,
) -> std::io::Result<String> {
    let day = super::day_of(now);
    let log = TlsRptRecorder::load(dir, day)?;
    let reports: Vec<String> = (log.domains().into_iter())
        .filter_map(|d| Some(settings.report(&log, d, day)?.to_json()))
        .collect();
    Ok(format!("[{}]", reports.join(",\n")))
}

/// TLS-RPT for a runner: a recorder under `dir` (add it with
/// [`Runner::with_observer`](crate::Runner::with_observer)) and, with a
/// `resolver` for the `_smtp._tls` records, a task (on the current tokio
/// runtime) sending each finished day's reports hourly: mail queued in
/// `store` as `settings` say, POSTs with `https`. Without a resolver or
/// settings, sessions are counted and nothing is sent (logged).
pub fn start(
    dir: std::path::PathBuf,
    settings: Option<ReportSettings>,
    store: Arc<dyn Store>,
    resolver: Option<Arc<dyn Resolver>>,
    https: Option<PolicyFetcher>,
) -> std::io::Result<Arc<TlsRptRecorder>> {
    let recorder = Arc::new(TlsRptRecorder::open(dir)?);
    match (resolver, settings) {
        (Some(resolver), Some(settings)) => {
            if settings.dkim.is_none() {
                tracing::warn!(
                    "TLS-RPT: mailed reports are not DKIM-signed (no [tls_report] dkim_key), and receivers ignore unsigned ones (RFC 8460 §3); reports by HTTPS are not affected"
                );
            }
            let sender = ReportSender::new(settings, store, resolver, https);
            let every = std::time::Duration::from_secs(3600);
            tokio::spawn(run_reports(sender, recorder.clone(), every));
        }
        _ => tracing::warn!(
            "TLS-RPT: sessions are counted but no reports are sent (no resolver, or the host name is no mail domain)"
        ),
    }
    Ok(recorder)
}
