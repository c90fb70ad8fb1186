//! SMTP TLS Reporting (RFC 8460): the `_smtp._tls` TXT record, a log of
//! outbound TLS results per policy domain, and the daily aggregate report
//! (JSON, gzip) built from it.
//!
//! Every delivery attempt records one session result: a success, or a
//! failure with RFC 8460's result type (§4.3), under the policy that applied
//! (DANE's TLSA records, an MTA-STS policy, or none found). The log
//! serialises, so the counts survive a restart; [`TlsRptLog::report`] turns
//! one day of it into the report that goes to each `rua` of the domain's
//! TXT record, by mail through the queue or by HTTPS POST.

mod record;
mod recorder;
mod report;
mod send;

pub use record::{ReportUri, TlsRptRecord, TlsRptRecordError};
pub use recorder::{TlsRptRecorder, WRITE_EVERY, day_of};
pub use report::{
    DateRange, Failure, PolicyKey, PolicyType, Report, ResultType, TlsRptLog, report_file_name,
};
pub use send::{
    RETRY_DAYS, ReportSender, ReportSettings, SentReport, TlsReportTable, TlsReportTableError,
    pending_json, run_reports, start,
};

#[cfg(test)]
mod tests;
