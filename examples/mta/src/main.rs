//! `postern-mta`: see `postern-mta --help` and `examples/mta/hardening.toml`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use postern_listener::Observer;
use postern_mta::cli::{self, Cli, CliCommand, LogFormat, PolicyCommand, UserCommand};
use postern_mta::config::MtaConfig;
use postern_mta::metrics::{self, Metrics};
use postern_mta::outbound;
use postern_mta::server::Mta;
use postern_mta::tls::{
    SelfSignedSource, ensure_self_signed, listener_configs, needs_self_signed, self_signed_names,
};
use postern_mta::users::{self, Mailboxes};
use postern_queue::admin::QueueAdmin;
use postern_queue::control;
use postern_queue::maildir::{LocalDelivery, Maildirs, sweep};
use postern_queue::runner::DeliveryObserver;
use postern_queue::{LogStore, Store};
use postern_session::SaslMechanisms;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postern-mta: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let code = match &cli.command {
        None | Some(CliCommand::Serve) => {
            drop(stdout);
            return serve(config, cli.log_format);
        }
        Some(CliCommand::Check) => cli::check(&config, &mut stdout),
        Some(CliCommand::Explain(args)) => cli::explain(&config, args, &mut stdout),
        Some(CliCommand::Policy(PolicyCommand::Test { cases })) => {
            cli::policy_test(&config, cases, &mut stdout)
        }
        Some(CliCommand::Queue(cmd)) => cli::queue(&config, cmd, &mut stdout),
        Some(CliCommand::TlsReport) => cli::tls_report(&config, &mut stdout),
        Some(CliCommand::User(UserCommand::Add { name })) => {
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            cli::user_add(&config.users_file(), name, &mut input, &mut stdout)
        }
    };
    let _ = stdout.flush();
    match code {
        Ok(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        Err(e) => {
            eprintln!("postern-mta: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(config: MtaConfig, format: LogFormat) -> ExitCode {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match format {
        // One JSON object per line, the event's fields at the top level.
        LogFormat::Json => logs.json().flatten_event(true).init(),
        _ => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postern-mta: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run(config));
    // Local deliveries on blocking threads finish or are redone at the
    // next start (they are idempotent); do not wait forever.
    runtime.shutdown_timeout(Duration::from_secs(10));
    code
}

async fn run(config: MtaConfig) -> ExitCode {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("postern-mta: {what}: {e}");
        ExitCode::from(1)
    };
    // Refuse early when the addresses are taken (most likely another
    // instance on the same data): opening the spool cleans its temporary
    // files, which belong to that instance.
    for l in &config.listeners {
        if let Err(e) = std::net::TcpListener::bind(l.addr) {
            return fail(&format!("listener {} cannot bind {}", l.name, l.addr), &e);
        }
    }
    let metrics_socket = match config.metrics.map(std::net::TcpListener::bind) {
        Some(Err(e)) => return fail("the metrics address cannot be bound", &e),
        bound => bound.and_then(Result::ok),
    };
    let metrics = config.metrics.map(|_| Arc::new(Metrics::default()));
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        return fail(&format!("cannot create {}", config.data_dir.display()), &e);
    }
    let spool: Arc<dyn Store> = match &config.store {
        Some(pg) => match postern_queue::pg::PgStore::open(pg.clone()) {
            Ok(s) => s,
            Err(e) => return fail("cannot open the queue database ([store])", &e),
        },
        None => match LogStore::open(&config.queue_dir()) {
            Ok(s) => s,
            Err(e) => {
                return fail(
                    &format!("cannot open the queue {}", config.queue_dir().display()),
                    &e,
                );
            }
        },
    };
    // Bound before the listeners, so the tools work once the ports answer
    // (connections wait in the backlog until it is served).
    let control_socket = match control::bind(&control::socket_path(&config.data_dir)) {
        Ok(socket) => socket,
        Err(e) => return fail("cannot open the control socket", &e),
    };
    let self_signed = if needs_self_signed(&config) {
        match ensure_self_signed(&config.tls_dir(), &self_signed_names(&config)) {
            Ok(f) => {
                tracing::info!(cert = %f.cert.display(), "self-signed certificate");
                SelfSignedSource::Files(f)
            }
            Err(e) => return fail("cannot create the self-signed certificate", &e),
        }
    } else {
        SelfSignedSource::Inline {
            cert: String::new(),
            key: String::new(),
        }
    };
    if let Err(e) = postern_mta::acme::prepare(&config) {
        return fail("cannot prepare the ACME certificates", &e);
    }
    let config = Arc::new(config);
    let users = Arc::new(users::open(&config));
    let mailboxes = Arc::new(Mailboxes {
        config: config.clone(),
        users: users.clone(),
    });
    let local = LocalDelivery::new(
        spool.clone(),
        Maildirs::new(config.mail_dir(), &config.hostname),
        mailboxes.clone(),
        Arc::new(postern_mta::outbound::bounces(spool.clone(), &config)),
    )
    .max_age(config.queue.retry.max_age);
    let mta = Arc::new(Mta::new(
        config.clone(),
        spool.clone(),
        users.clone(),
        local.clone(),
    ));
    let provider = Arc::new(postern_listener::default_provider());
    let mut listeners = listener_configs(
        &config,
        &self_signed,
        &SaslMechanisms::with_scram(mailboxes),
    );
    let observer = metrics
        .as_ref()
        .map(|m| m.listener.clone() as Arc<dyn Observer>);
    listeners
        .iter_mut()
        .for_each(|l| l.observer = observer.clone());
    let server = match postern_listener::Server::bind(listeners, mta, provider) {
        Ok(s) => s,
        Err(e) => return fail("cannot start the listeners", &e),
    };

    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(sweep(local, config.queue.scan_interval, shutdown.clone()));
    // The outbound runner (outbound.rs): remote recipients, retries, DSNs.
    let observer = metrics
        .as_ref()
        .map(|m| m.queue.clone() as Arc<dyn DeliveryObserver>);
    let (outbound, runner) =
        outbound::spawn(spool.clone(), config.clone(), shutdown.clone(), observer);
    // Queue tools reach the store through the server (its lock and holds).
    let admin = Arc::new(QueueAdmin::new(spool.clone()).with_runner(runner));
    tokio::spawn(control::serve(control_socket, admin, shutdown.clone()));
    let metrics_addr = metrics_socket.as_ref().and_then(|s| s.local_addr().ok());
    if let (Some(socket), Some(m)) = (metrics_socket, &metrics) {
        metrics::spawn(socket, m.clone(), &spool, &shutdown);
    }
    // ACME issuance and renewal (acme.rs), swapped in with the atomic reload.
    let _acme = postern_mta::acme::spawn(config.clone(), server.clone(), shutdown.clone());

    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "postern-mta {} ({})",
            env!("CARGO_PKG_VERSION"),
            config.source
        );
        for (name, addr) in server.local_addrs() {
            let mode = config
                .listener(&name)
                .map_or_else(String::new, |l| l.mode.to_string());
            let _ = writeln!(out, "  listening on {addr} ({name}, {mode})");
        }
        if let Some(addr) = metrics_addr {
            let _ = writeln!(out, "  metrics on http://{addr}/metrics");
        }
        let _ = writeln!(out, "  data in {}", config.data_dir.display());
        let _ = writeln!(
            out,
            "  local domains: {}",
            config
                .domains
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            out,
            "add a user:  echo 'PASSWORD' | postern-mta user add alice --data-dir {}",
            config.data_dir.display()
        );
        let _ = out.flush();
    }

    // Signals: SIGTERM/SIGINT shut down gracefully, SIGHUP reloads
    // certificates (and the users file).
    let signals = {
        let (server, users) = (server.clone(), users.clone());
        tokio::spawn(async move {
            let reload = || {
                tracing::info!("SIGHUP: reloading certificates and users");
                users.refresh();
                server.reload_all_certificates();
            };
            match postern_listener::until_stop_signal(reload).await {
                Ok(signal) => tracing::info!("{signal}: shutting down"),
                Err(e) => return tracing::error!(error = %e, "cannot install signal handlers"),
            }
            let _ = shutdown_tx.send(true);
            server.shutdown();
        })
    };

    server.run().await;
    tracing::info!("listeners closed; waiting for the queue runners");
    let _ = tokio::time::timeout(Duration::from_secs(30), outbound).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), sweeper).await;
    signals.abort();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
