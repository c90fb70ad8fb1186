//! The command line: serve (default), `check`, `explain`, `policy test`,
//! `user add`, `queue`. Each command returns its exit code; nothing here panics on
//! bad input.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use postern_proto::{ForwardPath, Mailbox, ReversePath};
use postern_rules::{Facts, PolicySuite, Severity, Stage};

use postern_queue::QueueId;
use postern_queue::control::{self, Request};

use crate::config::{ConfigError, MtaConfig};
use crate::tls::{
    CertNote, SelfSignedSource, auth_policy, certificate_notes, generate_self_signed,
    self_signed_names, tls_settings,
};
use crate::users::{add_user, has_mailbox};

/// postern-mta: a durable MTA built from the Postern crates.
///
/// With no command it serves: on the embedded default (127.0.0.1 ports
/// 2525, 2587, 2465; data in ./postern-data) unless --config is given.
#[derive(Debug, Parser)]
#[command(name = "postern-mta", version, about)]
pub struct Cli {
    /// The configuration file (default: the embedded default).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory (queue, mail, tls, users); overrides the file's.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log lines as text, or as JSON objects (one per line) for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do; serving when absent.
    #[command(subcommand)]
    pub command: Option<CliCommand>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Serve (the default).
    Serve,
    /// Validate the configuration and print the effective policy: each
    /// listener's TLS report, AUTH per transport, and the rule lint.
    Check,
    /// Print the rule trace and decision for one message, including the
    /// outbound plan of relayed recipients.
    Explain(ExplainArgs),
    /// Policy tests.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// The queue of the running server (through its control socket).
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The pending TLS-RPT reports (RFC 8460): today's sessions so far, a
    /// JSON array with one report per recipient domain.
    TlsReport,
}

/// `queue` subcommands. Exit code 2: no such message, or no server running.
#[derive(Debug, Clone, Subcommand)]
pub enum QueueCommand {
    /// One block per message, as mailq shows it (`*` active, `!` on hold).
    List {
        /// Machine-readable output (a JSON array of entries).
        #[arg(long)]
        json: bool,
    },
    /// One message: envelope, each recipient's state and last reply, the
    /// next attempt.
    Show {
        /// The queue id.
        id: QueueId,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Try a message again now.
    Retry {
        /// The queue id.
        #[arg(required_unless_present = "all")]
        id: Option<QueueId>,
        /// Every message not on hold.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Put a message on hold: no delivery until it is released.
    Hold {
        /// The queue id.
        id: QueueId,
    },
    /// Release a held message (it is tried at once).
    Release {
        /// The queue id.
        id: QueueId,
    },
    /// Remove a message for good, without a report.
    Remove {
        /// The queue id.
        id: QueueId,
    },
}

/// `explain` arguments.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The listener the message arrives on.
    #[arg(long)]
    pub listener: String,
    /// The connection is TLS (implicit, or after STARTTLS).
    #[arg(long)]
    pub tls: bool,
    /// The client authenticated as this user.
    #[arg(long, value_name = "USER")]
    pub auth: Option<String>,
    /// The client's HELO/EHLO name.
    #[arg(long)]
    pub helo: Option<String>,
    /// The client's IP address.
    #[arg(long, value_name = "IP")]
    pub remote_ip: Option<std::net::IpAddr>,
    /// The sender (`""` for the null sender).
    #[arg(long, value_name = "ADDR")]
    pub from: String,
    /// Recipients.
    #[arg(long, value_name = "ADDR", required = true, num_args = 1..)]
    pub to: Vec<String>,
    /// For relayed recipients, also the outbound TLS plan that would be
    /// used now, from live DNS (MX, DNSSEC, TLSA) and MTA-STS lookups.
    #[arg(long)]
    pub live: bool,
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run policy-test files (`[[case]]` tables) against the config's rules.
    Test {
        /// The case files.
        #[arg(required = true, value_name = "CASES")]
        cases: Vec<PathBuf>,
    },
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add (or replace) a user; the password is read from standard input
    /// (first line).
    Add {
        /// `name` (a mailbox at every local domain) or `name@domain`.
        name: String,
    },
}

/// `tls-report`: prints the pending reports; exit 1 when the day's log
/// cannot be read.
pub fn tls_report(config: &MtaConfig, out: &mut dyn Write) -> std::io::Result<i32> {
    let Some(settings) = &config.tls_report else {
        return writeln!(out, "error: the host name is no mail domain").map(|()| 1);
    };
    let now = postern_queue::unix_now();
    match postern_queue::tlsrpt::pending_json(&config.data_dir.join("tlsrpt"), settings, now) {
        Ok(json) => writeln!(out, "{json}").map(|()| 0),
        Err(e) => writeln!(out, "error: {e}").map(|()| 1),
    }
}

/// Loads `--config` or the embedded default and applies `--data-dir`.
pub fn load_config(cli: &Cli) -> Result<MtaConfig, ConfigError> {
    let mut config = match &cli.config {
        Some(path) => MtaConfig::load(path)?,
        None => MtaConfig::embedded()?,
    };
    if let Some(dir) = &cli.data_dir {
        config.set_data_dir(dir.clone());
    }
    Ok(config)
}

/// `check`: prints the effective policy; exit 1 when anything is an error.
pub fn check(config: &MtaConfig, out: &mut dyn Write) -> std::io::Result<i32> {
    let mut errors = 0;
    writeln!(out, "configuration: {}", config.source)?;
    writeln!(out, "hostname: {}", config.hostname)?;
    writeln!(out, "data directory: {}", config.data_dir.display())?;
    let domains: Vec<&str> = config.domains.iter().map(|d| d.name.as_str()).collect();
    let domains = Some(domains.join(", ")).filter(|d| !d.is_empty());
    let domains = domains.unwrap_or_else(|| "none".into());
    writeln!(out, "local domains: {domains} (postmaster exists at each)")?;
    writeln!(
        out,
        "queue: max age {}s, retry {}s doubling to {}s",
        config.queue.retry.max_age.as_secs(),
        config.queue.retry.initial.as_secs(),
        config.queue.retry.cap.as_secs()
    )?;
    writeln!(out, "dns: {}", config.dns)?;
    if let Some(warning) = config.dns.warning() {
        writeln!(out, "  warning: {warning}")?;
    }
    if let Some(r) = &config.tls_report {
        writeln!(out, "tls_report: {r}")?;
    }
    // A throwaway certificate stands in for self-signed ones: check writes
    // nothing to the data directory.
    let self_signed = match generate_self_signed(&self_signed_names(config)) {
        Ok((cert, key)) => SelfSignedSource::Inline { cert, key },
        Err(e) => {
            writeln!(out, "error: cannot generate a certificate: {e}")?;
            return Ok(1);
        }
    };
    let provider = Arc::new(postern_listener::default_provider());
    for l in &config.listeners {
        writeln!(out)?;
        writeln!(out, "listener {} on {} ({})", l.name, l.addr, l.mode)?;
        let (auth, skipped) = auth_policy(config, l);
        let names = |v: &[postern_proto::Mechanism<'static>]| {
            if v.is_empty() {
                "off".to_owned()
            } else {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        writeln!(out, "  AUTH on plaintext: {}", names(&auth.plaintext))?;
        writeln!(out, "  AUTH over TLS:     {}", names(&auth.tls))?;
        if !skipped.is_empty() {
            writeln!(
                out,
                "  warning: the rules allow {} but only PLAIN and LOGIN are implemented; those are not offered",
                skipped.join(", ")
            )?;
        }
        if l.require_auth {
            writeln!(out, "  MAIL requires AUTH")?;
        }
        match config.tls_of(l) {
            None => writeln!(out, "  TLS: none (plaintext only)")?,
            Some(spec) => {
                writeln!(out, "  TLS policy [tls.{}]:", spec.name)?;
                match tls_settings(spec, config, &self_signed).build(provider.clone()) {
                    Ok((_, report)) => {
                        for line in report.to_string().lines() {
                            writeln!(out, "    {line}")?;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        for line in e.to_string().lines() {
                            writeln!(out, "    {line}")?;
                        }
                    }
                }
                for note in certificate_notes(spec, config, std::time::SystemTime::now()) {
                    if matches!(note, CertNote::Error(_)) {
                        errors += 1;
                    }
                    writeln!(out, "    {note}")?;
                }
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "rules: {}", config.rules().len())?;
    for (i, r) in config.rules().rules().iter().enumerate() {
        writeln!(out, "  #{} {}", i + 1, r.name())?;
    }
    let findings = config.rules().lint();
    if findings.is_empty() {
        writeln!(out, "rule lint: no findings")?;
    }
    for f in &findings {
        if f.severity() == Severity::Error {
            errors += 1;
        }
        writeln!(out, "{f}")?;
    }
    writeln!(out)?;
    if errors > 0 {
        writeln!(out, "check: {errors} error(s)")?;
        Ok(1)
    } else {
        writeln!(out, "check: ok")?;
        Ok(0)
    }
}

/// `explain`: the rule trace for each recipient, and the MTA's own checks
/// (mailbox exists, relay needs AUTH).
pub fn explain(
    config: &MtaConfig,
    args: &ExplainArgs,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let Some(listener) = config.listener(&args.listener) else {
        let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        writeln!(
            out,
            "error: no listener {:?} (listeners: {})",
            args.listener,
            names.join(", ")
        )?;
        return Ok(2);
    };
    let tls = args.tls || matches!(listener.mode, postern_listener::Mode::Implicit);
    let users = crate::users::open(config);
    let from = match args.from.as_str() {
        "" | "<>" => ReversePath::Null,
        a => match Mailbox::parse(a.trim_start_matches('<').trim_end_matches('>')) {
            Ok(m) => ReversePath::Mailbox(m),
            Err(e) => {
                writeln!(out, "error: --from {a:?}: {e}")?;
                return Ok(2);
            }
        },
    };
    for to in &args.to {
        let mailbox = match Mailbox::parse(to) {
            Ok(m) => m,
            Err(e) => {
                writeln!(out, "error: --to {to:?}: {e}")?;
                return Ok(2);
            }
        };
        let domain = mailbox.host().to_string();
        let domain = domain.as_str();
        let local = config.is_local_domain(domain);
        let mut facts = Facts::new()
            .tls(tls)
            .listener(&listener.name)
            .local_port(listener.addr.port())
            .sender(from.clone())
            .recipient(ForwardPath::Mailbox(mailbox.clone()))
            .local_recipient(local);
        facts = match &args.auth {
            Some(u) => facts.user(u),
            None => facts.authenticated(false),
        };
        if let Some(h) = &args.helo {
            facts = facts.helo(h);
        }
        if let Some(ip) = args.remote_ip {
            facts = facts.remote_ip(ip);
        }
        writeln!(
            out,
            "=== <{}> -> <{to}> on listener {} ({}{})",
            args.from,
            listener.name,
            if tls { "TLS" } else { "plaintext" },
            args.auth
                .as_ref()
                .map(|u| format!(", user {u}"))
                .unwrap_or_default()
        )?;
        let trace = config.rules().explain(&facts);
        write!(out, "{trace}")?;
        if !trace.to_string().ends_with('\n') {
            writeln!(out)?;
        }
        let rcpt = config.rules().evaluate(Stage::Rcpt, &facts);
        let refused = trace.verdict.decision == postern_rules::VerdictKind::Reject
            || trace.verdict.decision == postern_rules::VerdictKind::Tempfail;
        let mta = if refused {
            "refused by the rules (above)".to_owned()
        } else if local {
            let lp = mailbox.local_part().to_string();
            let lp = lp.as_str();
            if has_mailbox(config, &users, lp, domain) {
                format!(
                    "accept: local delivery to the Maildir of {}",
                    to.to_ascii_lowercase()
                )
            } else {
                format!("reject at rcpt: 550 5.1.1 <{to}>: no such user here")
            }
        } else if matches!(rcpt.verdict, postern_rules::Verdict::Accept { .. })
            || args.auth.is_some()
        {
            match rcpt.relay.problem() {
                Some(p) => format!("accept, then stays queued: {p}"),
                None => format!(
                    "accept: queued for relay (plan above); {}",
                    rcpt.relay.dane_note()
                ),
            }
        } else {
            "reject at rcpt: 554 5.7.1 Relay access denied (relaying needs AUTH or a rule's accept)"
                .to_owned()
        };
        writeln!(out, "mta: {mta}")?;
        if args.live && mta.starts_with("accept: queued for relay") {
            write!(
                out,
                "live plan:\n{}",
                live_plan(config, args, &from, mailbox)?
            )?;
        }
        writeln!(out)?;
    }
    Ok(0)
}

/// The live outbound plan of one relayed recipient (`explain --live`).
fn live_plan(
    config: &MtaConfig,
    args: &ExplainArgs,
    from: &ReversePath<'_>,
    to: Mailbox<'_>,
) -> std::io::Result<String> {
    let id = "0".repeat(26).parse().map_err(std::io::Error::other)?;
    let mut env = postern_queue::Envelope::new(id, from.clone().into_owned());
    (env.listener, env.helo, env.auth_user) = (
        Some(args.listener.clone()),
        args.helo.clone(),
        args.auth.clone(),
    );
    let rcpt = postern_queue::RecipientState::pending(to.into_owned(), false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(crate::outbound::explain_live(config, &env, &rcpt)))
}

/// `policy test`: runs each case file against the config's rules.
pub fn policy_test(
    config: &MtaConfig,
    files: &[PathBuf],
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let mut code = 0;
    for path in files {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                writeln!(out, "{name}: cannot read: {e}")?;
                code = 2;
                continue;
            }
        };
        match PolicySuite::from_toml_str(&text, &name) {
            Ok(suite) => {
                let report = suite.run(config.rules());
                write!(out, "{report}")?;
                if !report.passed() {
                    code = code.max(1);
                }
            }
            Err(e) => {
                writeln!(out, "{e}")?;
                code = 2;
            }
        }
    }
    Ok(code)
}

/// `user add`: reads the password from `input` (first line) and stores it.
pub fn user_add(
    users_file: &Path,
    name: &str,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    match add_user(users_file, name, password.as_bytes()) {
        Ok(existed) => {
            writeln!(
                out,
                "{} user {} in {}",
                if existed { "replaced" } else { "added" },
                name.to_ascii_lowercase(),
                users_file.display()
            )?;
            Ok(0)
        }
        Err(e) => {
            writeln!(out, "error: {e}")?;
            Ok(1)
        }
    }
}

/// `queue ...`: one request to the running server. Exit 2 for an unknown
/// id or no server, 1 for other failures.
pub fn queue(config: &MtaConfig, cmd: &QueueCommand, out: &mut dyn Write) -> std::io::Result<i32> {
    let (request, json) = match cmd.clone() {
        QueueCommand::List { json } => (Request::List, json),
        QueueCommand::Show { id, json } => (Request::Show { id }, json),
        QueueCommand::Retry { id, .. } => (Request::Retry { id }, false),
        QueueCommand::Hold { id } => (Request::Hold { id }, false),
        QueueCommand::Release { id } => (Request::Release { id }, false),
        QueueCommand::Remove { id } => (Request::Remove { id }, false),
    };
    let answer = control::request(&control::socket_path(&config.data_dir), &request);
    control::print_answer(answer, json, out, &mut std::io::stderr().lock())
}
