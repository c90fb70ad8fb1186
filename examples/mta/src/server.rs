//! The listener handler: every session event answered from the rules, the
//! users file, the mailbox directory and the spool.
//!
//! | event | what decides |
//! |---|---|
//! | connect, HELO/EHLO | rules at `connect` / `helo`; the EHLO reply offers the AUTH mechanisms the rules allow at `helo` for this connection's facts (remote IP, HELO name, TLS, listener) |
//! | AUTH | rules at `auth` (mechanism allowed on this transport, else `538 5.7.11`), then the users file (argon2; `535 5.7.8`) |
//! | MAIL | rules at `mail` |
//! | RCPT | rules at `rcpt` (per recipient); then local: the mailbox must exist (`550 5.1.1`); remote: a rule's `accept` or an authenticated client, else `554 5.7.1` relay denied |
//! | DATA/BDAT | rules at `data` per recipient (reject, `add_header`); the spool writer opens with our Received header |
//! | body | written to the spool's temp file |
//! | end of data | commit (body and sealed envelope written, one group-committed sync, see `crate::spool`), then `250 2.0.0 Ok: queued as ID`; local recipients handed to the delivery thread
//!
//! One `info` log line per transaction (`transaction` target): listener,
//! peer, TLS version and cipher, user, the rules that decided, queue id and
//! result.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use postern_listener::session::{Decision, EhloOffer, HelloVerb, Notice, Question};
use postern_listener::{ConnContext, ConnectionHandler, ConnectionView as Facts, Handler};
use postern_proto::{
    Domain, EnhancedCode, ForwardPath, Host, LocalPart, Mailbox, Reply, ReplyCode, ReversePath,
};
use postern_rules::{AuthOffer, Stage, Verdict};

use postern_listener::guard::{AuthGuard, MemoryStore, SharedHooks};

use crate::config::MtaConfig;
use crate::users::Users;
use postern_queue::maildir::{DeliveryQueue, LocalDelivery};
use postern_queue::trace::{TraceInfo, received_header};
use postern_queue::{Envelope, MessageParams, MessageWriter, QueueId, RecipientState, Store};
use postern_session::ProofCheck;

/// The MTA's listener handler, shared by every connection.
#[derive(Debug)]
pub struct Mta {
    config: Arc<MtaConfig>,
    spool: Arc<dyn Store>,
    users: Arc<Users>,
    local: DeliveryQueue,
    guard: Option<Arc<AuthGuard>>,
}

impl Mta {
    /// A handler over this configuration, spool, users and local delivery
    /// (whose batch thread starts here, see [`DeliveryQueue`]).
    pub fn new(
        config: Arc<MtaConfig>,
        spool: Arc<dyn Store>,
        users: Arc<Users>,
        local: LocalDelivery,
    ) -> Mta {
        let guard = config.auth_limits.as_ref().map(|a| {
            let mut store = MemoryStore::new(a.max_entries);
            // With a shared queue the counts are shared too (docs/scaling.md).
            if let Some(pg) = &config.store {
                match postern_queue::pg::GuardTable::start(pg.clone()) {
                    Ok(t) => {
                        let t2 = t.clone();
                        let push = Box::new(move |k: &str, e: &str, u| t.push(k, e, u));
                        let pull = Box::new(move || t2.pull());
                        store = store.shared(SharedHooks::new(push, pull));
                    }
                    Err(e) => tracing::error!(error = %e, "auth limits: not shared"),
                }
            }
            Arc::new(AuthGuard::with_store(a.limits.clone(), store))
        });
        Mta {
            config,
            spool,
            users,
            local: local.start_queue(),
            guard,
        }
    }

    /// The AUTH failure limiter (`None` when `[auth_limits]` is disabled).
    pub fn auth_guard(&self) -> Option<&Arc<AuthGuard>> {
        self.guard.as_ref()
    }
}

impl Handler for Mta {
    type Conn = MtaConn;

    fn connect(&self, info: &ConnContext) -> MtaConn {
        MtaConn {
            config: self.config.clone(),
            spool: self.spool.clone(),
            users: self.users.clone(),
            local: self.local.clone(),
            peer: info.peer,
            txn: None,
            guard: self.guard.clone(),
            auth_failures: 0,
        }
    }
}

/// One connection's state.
#[derive(Debug)]
pub struct MtaConn {
    config: Arc<MtaConfig>,
    spool: Arc<dyn Store>,
    users: Arc<Users>,
    local: DeliveryQueue,
    peer: SocketAddr,
    txn: Option<Txn>,
    guard: Option<Arc<AuthGuard>>,
    /// Failed AUTH attempts on this connection (for the growing delay).
    auth_failures: u32,
}

#[derive(Debug, Default)]
struct Txn {
    /// The reverse-path (stored as it is) and BODY as the rules see them.
    from: Option<ReversePath<'static>>,
    body: Option<postern_proto::Body>,
    /// The forward-paths of `recipients`, as the rules see them.
    paths: Vec<ForwardPath<'static>>,
    params: MessageParams,
    recipients: Vec<RecipientState>,
    rules: Vec<String>,
    refused: Vec<String>,
    writer: Option<MessageWriter>,
    write_error: Option<io::Error>,
}

fn reply(code: u16, enhanced: &str, text: impl Into<String>) -> Reply<'static> {
    let code = ReplyCode::new(code).unwrap_or(ReplyCode::OK);
    let enhanced = EnhancedCode::parse_prefix(enhanced).map(|(e, _)| e);
    Reply::fixed(code, enhanced, text.into())
}

/// The session decision for a rules verdict (continue and accept go on).
/// The rule's reply was built when the rules loaded and is sent as it is.
fn from_rules(d: &Verdict<'_>) -> Option<Decision> {
    match d {
        Verdict::Reject { reply, .. } => Some(Decision::RejectWith((*reply).clone())),
        Verdict::Tempfail { reply, .. } => Some(Decision::TempfailWith((*reply).clone())),
        _ => None,
    }
}

/// What the EHLO reply offers this connection: the session's proposal with
/// AUTH narrowed to what the rules allow at `helo` for its facts (in the
/// rules' order). The same facts decide the AUTH itself (`on_auth`).
fn ehlo_offer(proposal: EhloOffer, auth: AuthOffer) -> EhloOffer {
    let allowed: Vec<postern_proto::Mechanism<'static>> = auth
        .mechanisms()
        .iter()
        .filter(|m| proposal.offers_auth(m))
        .collect();
    let mut offer = proposal;
    offer.auth = allowed;
    offer
}

/// `local@domain` of a forward path, and the path the rules see;
/// `<Postmaster>` is postmaster at our first local domain.
fn forward_address(
    to: &ForwardPath<'static>,
    config: &MtaConfig,
) -> (ForwardPath<'static>, String, String, String) {
    match to {
        ForwardPath::Postmaster => {
            let d = config
                .domains
                .first()
                .map_or_else(|| config.hostname.clone(), |d| d.name.clone());
            let path = match (LocalPart::new("postmaster"), Domain::new(d.clone())) {
                (Ok(l), Ok(dom)) => ForwardPath::Mailbox(Mailbox::new(l, Host::Domain(dom))),
                _ => ForwardPath::Postmaster,
            };
            (path, format!("postmaster@{d}"), "postmaster".into(), d)
        }
        ForwardPath::Mailbox(m) => {
            let local = m.local_part().to_string();
            let domain = m.host().to_string();
            (to.clone(), m.to_string(), local, domain)
        }
    }
}

impl MtaConn {
    fn facts(&self, f: &Facts<'_>) -> postern_rules::Facts {
        let mut x = postern_rules::Facts::new()
            .tls(f.is_tls())
            .listener(f.listener)
            .local_port(f.local.port())
            .remote_ip(f.peer.ip());
        if let Some(t) = f.tls {
            x = x
                .cipher(&t.cipher)
                .client_cert_verified(t.client_cert_verified)
                .tls_version(t.version);
        }
        if let Some(h) = f.hello_name {
            x = x.helo(h);
        }
        match f.authenticated {
            Some(a) => x.user(&a.authcid),
            None => x.authenticated(false),
        }
    }

    fn txn_facts(&self, f: &Facts<'_>) -> postern_rules::Facts {
        let mut x = self.facts(f);
        if let Some(t) = &self.txn {
            x = x
                .smtputf8(t.params.smtputf8)
                .requiretls(t.params.requiretls);
            if let Some(from) = &t.from {
                x = x.sender(from.clone());
            }
            if let Some(s) = t.params.size {
                x = x.size(s);
            }
            if let Some(b) = t.body {
                x = x.body(b);
            }
        }
        x
    }

    fn log(&self, f: &Facts<'_>, id: Option<&QueueId>, result: &str) {
        // "-" for what is absent, so every line has every field.
        let dash = || "-".to_owned();
        let join = |v: &[String], sep| if v.is_empty() { dash() } else { v.join(sep) };
        let t = self.txn.as_ref();
        let to = t.map_or_else(dash, |t| {
            let r: Vec<String> = t.recipients.iter().map(|r| r.address.to_string()).collect();
            r.join(",")
        });
        tracing::info!(
            target: "transaction",
            listener = f.listener,
            peer = %f.peer,
            tls = %f.tls.map_or_else(dash, |t| t.version.to_string()),
            cipher = %f.tls.map_or("-", |t| t.cipher.as_str()),
            group = f.tls.and_then(|t| t.group.as_deref()).unwrap_or("-"),
            user = f.authenticated.map_or("-", |a| a.authcid.as_str()),
            rules = %t.map_or_else(dash, |t| join(&t.rules, ",")),
            id = %id.map_or_else(dash, ToString::to_string),
            from = %t.map_or_else(dash, |t| {
                t.from.as_ref().map_or_else(|| "<>".to_owned(), ToString::to_string)
            }),
            to = %to,
            refused = %t.map_or_else(dash, |t| join(&t.refused, "; ")),
            result,
        );
    }

    fn note_rule(&mut self, d: &Verdict<'_>) {
        if let (Some(rule), Some(t)) = (d.rule(), self.txn.as_mut()) {
            let name = rule.name().to_owned();
            if !t.rules.contains(&name) {
                t.rules.push(name);
            }
        }
    }

    async fn on_auth(
        &mut self,
        credentials: postern_session::Credentials,
        f: &Facts<'_>,
    ) -> Decision {
        let tls = f.is_tls();
        let outcome = self.config.rules().evaluate(Stage::Auth, &self.facts(f));
        if let Some(d) = from_rules(&outcome.verdict) {
            return d;
        }
        let mech = credentials.mechanism.as_str().to_owned();
        let allowed = outcome
            .auth
            .for_connection(tls)
            .allows(&credentials.mechanism);
        if !allowed {
            tracing::info!(listener = f.listener, peer = %f.peer, mechanism = %mech, tls, "AUTH refused by the rules");
            return Decision::RejectWith(if tls {
                reply(504, "5.5.4", "Authentication mechanism not allowed here")
            } else {
                reply(
                    538,
                    "5.7.11",
                    "Encryption required for requested authentication mechanism",
                )
            });
        }
        if credentials
            .authzid
            .as_deref()
            .is_some_and(|z| !z.is_empty() && !z.eq_ignore_ascii_case(&credentials.authcid))
        {
            return Decision::RejectWith(reply(535, "5.7.8", "Authorization identity not allowed"));
        }
        let user = credentials.authcid.clone();
        // The limiter first: a throttled or banned client's guess is not
        // even checked (no argon2 spent, nothing learnt).
        if let Some(guard) = &self.guard
            && let Err(refusal) = guard.check(f.peer.ip(), &user, SystemTime::now())
        {
            return Decision::TempfailWith(refusal.reply());
        }
        let users = self.users.clone();
        let user = credentials.authcid.clone();
        // SCRAM checked the client's proof against the users' keys itself.
        let ok = match credentials.check {
            ProofCheck::ByEmbedder => tokio::task::spawn_blocking(move || {
                let password = credentials.secret.expose();
                users.verify(&credentials.authcid, password)
            })
            .await
            .unwrap_or(false),
            check => check == ProofCheck::Verified,
        };
        if ok {
            tracing::info!(listener = f.listener, peer = %f.peer, user = %user, mechanism = %mech, "authenticated");
            Decision::Accept
        } else {
            tracing::warn!(listener = f.listener, peer = %f.peer, user = %user, mechanism = %mech, "authentication failed");
            self.auth_failures = self.auth_failures.saturating_add(1);
            let Some(guard) = self.guard.clone() else {
                return Decision::Reject;
            };
            let outcome = guard.failed(f.peer.ip(), &user, SystemTime::now());
            // Tarpit: a growing wait before each later failure's reply.
            let delay = guard.delay(self.auth_failures);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            outcome
                .reply()
                .map_or(Decision::Reject, Decision::TempfailWith)
        }
    }

    fn on_mail(
        &mut self,
        from: ReversePath<'static>,
        params: postern_proto::MailParams<'static>,
        f: &Facts<'_>,
    ) -> Decision {
        let mut mp = MessageParams::default();
        mp.envid = params.envid.as_deref().map(str::to_owned);
        mp.ret = params.ret;
        mp.body = params.body;
        mp.smtputf8 = params.smtputf8;
        mp.size = params.size;
        mp.requiretls = params.requiretls;
        self.txn = Some(Txn {
            from: Some(from),
            body: params.body,
            params: mp,
            ..Txn::default()
        });
        let config = self.config.clone();
        let outcome = config.rules().evaluate(Stage::Mail, &self.txn_facts(f));
        self.note_rule(&outcome.verdict);
        if let Some(d) = from_rules(&outcome.verdict) {
            self.log(f, None, &format!("refused at MAIL: {}", d));
            self.txn = None;
            return d;
        }
        Decision::Accept
    }

    fn on_rcpt(
        &mut self,
        to: ForwardPath<'static>,
        params: postern_proto::RcptParams<'static>,
        f: &Facts<'_>,
    ) -> Decision {
        if self.txn.is_none() {
            return Decision::RejectWith(reply(503, "5.5.1", "MAIL first"));
        }
        let (path, address, local_part, domain) = forward_address(&to, &self.config);
        let local = self.config.is_local_domain(&domain);
        let facts = self
            .txn_facts(f)
            .recipient(path.clone())
            .local_recipient(local);
        let config = self.config.clone();
        let outcome = config.rules().evaluate(Stage::Rcpt, &facts);
        self.note_rule(&outcome.verdict);
        // Refused recipients are reported in the transaction's log line.
        let refuse = |this: &mut MtaConn, d: Decision| {
            if let Some(t) = this.txn.as_mut() {
                t.refused.push(format!("<{address}> {}", d));
            }
            d
        };
        if let Some(d) = from_rules(&outcome.verdict) {
            return refuse(self, d);
        }
        if local {
            if !crate::users::has_mailbox(&self.config, &self.users, &local_part, &domain) {
                return refuse(
                    self,
                    Decision::RejectWith(reply(
                        550,
                        "5.1.1",
                        format!("<{address}>: Recipient address rejected: no such user here"),
                    )),
                );
            }
        } else {
            let accepted_by_rule = matches!(outcome.verdict, Verdict::Accept { .. });
            if !accepted_by_rule && f.authenticated.is_none() {
                return refuse(
                    self,
                    Decision::RejectWith(reply(
                        554,
                        "5.7.1",
                        format!("<{address}>: Relay access denied"),
                    )),
                );
            }
            if let Some(problem) = outcome.relay.problem() {
                tracing::warn!(rcpt = %address, %problem, "relay plan cannot be carried out; the message will stay queued");
            }
        }
        // Local mailboxes are stored lower-cased (their Maildir names).
        let lower = format!("{local_part}@{domain}").to_ascii_lowercase();
        let mailbox = match (&path, Mailbox::parse(&lower)) {
            (ForwardPath::Mailbox(_), Ok(m)) if local => m.into_owned(),
            (ForwardPath::Mailbox(m), _) => m.clone(),
            (ForwardPath::Postmaster, _) => {
                let no_postmaster = reply(451, "4.3.0", "<Postmaster>: no postmaster mailbox here");
                return refuse(self, Decision::TempfailWith(no_postmaster));
            }
        };
        let mut state = RecipientState::pending(mailbox, local);
        state.orcpt = params.orcpt.clone();
        state.notify = params.notify;
        if let Some(t) = self.txn.as_mut() {
            t.recipients.push(state);
            t.paths.push(path);
        }
        Decision::Accept
    }

    fn on_data_start(&mut self, f: &Facts<'_>) -> Decision {
        let Some(txn) = self.txn.as_ref() else {
            return Decision::RejectWith(reply(503, "5.5.1", "MAIL first"));
        };
        // Rules at `data`, once per recipient (the rcpt conditions are
        // known here too); headers from every match, once each.
        let mut headers: Vec<(String, String)> = Vec::new();
        let base = self.txn_facts(f);
        let config = self.config.clone();
        let addresses: Vec<(String, bool)> = txn
            .recipients
            .iter()
            .map(|r| (r.address.to_string(), r.local))
            .collect();
        let paths = txn.paths.clone();
        for ((_, local), path) in addresses.iter().zip(paths) {
            let facts = base.clone().recipient(path).local_recipient(*local);
            let outcome = config.rules().evaluate(Stage::Data, &facts);
            self.note_rule(&outcome.verdict);
            if let Some(d) = from_rules(&outcome.verdict) {
                self.log(f, None, &format!("refused at DATA: {}", d));
                return d;
            }
            for h in outcome.headers {
                let pair = (h.name().to_owned(), h.value().to_owned());
                if !headers.contains(&pair) {
                    headers.push(pair);
                }
            }
        }
        let id = self.spool.new_id();
        let single = (addresses.len() == 1).then(|| addresses[0].0.clone());
        let tls = f.tls.map(|t| (t.version.to_string(), t.cipher.clone()));
        let mut trace = TraceInfo::default();
        trace.helo = f.hello_name;
        trace.peer_ip = Some(f.peer.ip());
        trace.by = &self.config.hostname;
        trace.listener = f.listener;
        trace.esmtp = !matches!(f.hello, Some(HelloVerb::Helo));
        trace.tls = tls;
        trace.key_exchange = f.tls.and_then(|t| t.group.clone());
        trace.auth_user = f.authenticated.map(|a| a.authcid.as_str());
        trace.id = id.as_str();
        trace.single_recipient = single.as_deref();
        let mut head = received_header(&trace, SystemTime::now());
        for (n, v) in &headers {
            let _ = write!(head, "{n}: {v}\r\n");
        }
        let writer = self.spool.writer(&id).and_then(|mut w| {
            w.write(head.as_bytes())?;
            Ok(w)
        });
        match writer {
            Ok(w) => {
                if let Some(t) = self.txn.as_mut() {
                    t.writer = Some(w);
                    t.write_error = None;
                }
                Decision::Accept
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot open a spool file");
                self.log(f, None, "tempfail at DATA: spool unavailable");
                Decision::TempfailWith(reply(451, "4.3.0", "Local error: cannot queue now"))
            }
        }
    }

    fn on_chunk(&mut self, chunk: &[u8]) {
        if let Some(t) = self.txn.as_mut()
            && t.write_error.is_none()
            && let Some(w) = t.writer.as_mut()
            && let Err(e) = w.write(chunk)
        {
            t.write_error = Some(e);
        }
    }

    async fn on_complete(&mut self, f: &Facts<'_>) -> Decision {
        let Some(mut txn) = self.txn.take() else {
            return Decision::RejectWith(reply(503, "5.5.1", "no transaction"));
        };
        let Some(writer) = txn.writer.take() else {
            return Decision::TempfailWith(reply(451, "4.3.0", "Local error: nothing spooled"));
        };
        if let Some(e) = txn.write_error.take() {
            tracing::error!(error = %e, "spool write failed");
            self.txn = Some(txn);
            self.log(f, None, "tempfail: spool write failed");
            self.txn = None;
            return Decision::TempfailWith(reply(451, "4.3.0", "Local error: cannot queue now"));
        }
        let id = writer.id().clone();
        let sender = txn.from.clone().unwrap_or(ReversePath::Null);
        let mut env = Envelope::new(id.clone(), sender);
        env.params = txn.params.clone();
        env.listener = Some(f.listener.to_owned());
        env.peer = Some(f.peer.to_string());
        env.helo = f.hello_name.map(str::to_owned);
        // By name until the session uses proto's TlsVersion.
        env.tls_version = f
            .tls
            .and_then(|t| postern_proto::TlsVersion::from_name(&t.version.to_string()));
        env.tls_cipher = f.tls.map(|t| t.cipher.clone());
        env.auth_user = f.authenticated.map(|a| a.authcid.clone());
        env.recipients = txn.recipients.clone();
        // Resolves after the group commit that made it durable.
        let committed = writer.commit(&env).await;
        self.txn = Some(txn);
        let hold = match committed {
            Ok(hold) => hold,
            Err(e) => {
                tracing::error!(id = %id, error = %e, "commit failed; not acknowledged");
                self.log(f, Some(&id), "tempfail: commit failed");
                self.txn = None;
                return Decision::TempfailWith(reply(
                    451,
                    "4.3.0",
                    "Local error: cannot queue now",
                ));
            }
        };
        self.log(f, Some(&id), "queued");
        self.txn = None;
        if env.has_open_local() {
            self.local.push(hold);
        } else {
            drop(hold);
        }
        Decision::AcceptWith(reply(250, "2.0.0", format!("Ok: queued as {id}")))
    }
}

impl ConnectionHandler for MtaConn {
    async fn question(&mut self, question: Question, f: &Facts<'_>) -> Decision {
        match question {
            Question::Connect => {
                let outcome = self.config.rules().evaluate(Stage::Connect, &self.facts(f));
                match from_rules(&outcome.verdict) {
                    Some(d) => {
                        tracing::info!(listener = f.listener, peer = %self.peer, decision = %d, "connection refused by the rules");
                        d
                    }
                    None => Decision::Accept,
                }
            }
            Question::Hello { host, offer, .. } => {
                let name = host.to_string();
                let facts = self.facts(f).helo(&name);
                let outcome = self.config.rules().evaluate(Stage::Helo, &facts);
                if let Some(d) = from_rules(&outcome.verdict) {
                    return d;
                }
                let plan = outcome.auth.for_connection(f.is_tls());
                Decision::Advertise(ehlo_offer(offer, plan))
            }
            Question::Auth { credentials } => self.on_auth(credentials, f).await,
            Question::Mail { from, params } => self.on_mail(from, params, f),
            Question::Rcpt { to, params } => self.on_rcpt(to, params, f),
            Question::DataStart { .. } => self.on_data_start(f),
            Question::MessageComplete { .. } => self.on_complete(f).await,
            other => {
                tracing::warn!(question = ?other, "question not known to the MTA; tempfailing");
                Decision::Tempfail
            }
        }
    }

    async fn notice(&mut self, notice: Notice, f: &Facts<'_>) {
        match notice {
            Notice::BodyChunk(chunk) => self.on_chunk(&chunk),
            Notice::TransactionAborted { reason } => {
                if self.txn.is_some() {
                    self.log(f, None, &format!("aborted: {reason:?}"));
                }
                // Dropping the writer abandons the message.
                self.txn = None;
            }
            Notice::StartTls { .. } | Notice::Closed { .. } => self.txn = None,
            _ => {}
        }
    }
}
