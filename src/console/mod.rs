//! The web console (README "Web console"): pages for data staff,
//! operators, auditors and the system administrator, served by the
//! daemon on `[console] listen` — loopback by default, HTTPS (rustls)
//! whenever TLS files are configured, and only then beyond loopback.
//!
//! Rules this module owns:
//! - every page and action is checked on the server against
//!   `access::allows` for the session's role; data staff see their own
//!   datasets only;
//! - every state-changing request is a POST carrying the session's CSRF
//!   token (the login form a token of its own);
//! - every login, refused login, lock-out, session end, refusal, upload
//!   and action is an exchange-log entry with the user's name;
//! - the console never holds up the pipeline: it reads through read-only
//!   connections with short queries, and its writes are single short
//!   transactions (an exchange-log entry, a user's failure count, the
//!   same outbox transitions `fepd batches` makes); that work (database,
//!   argon2, a file read) runs on the console's own [`BUSY`] threads at a
//!   lower priority (`pool`), so however many requests arrive, the
//!   console takes at most that many threads, and cores only when the
//!   pipeline leaves them — the other requests wait their turn;
//! - pages show what the CLI shows, through the same functions
//!   (`daemon::status`, `state::batches`, `audit::show`/`trace`/`verify`,
//!   `audit::report`, `report::table`, `daemon::check`, and in cluster mode
//!   `cluster::fleet`/`logpub` through `cluster::view`); no page or
//!   download shows a record's value but masked.

pub mod access;
pub mod accounts;
mod assets;
mod batches;
mod chart;
mod cluster;
mod html;
mod login;
mod pages;
mod pool;
mod records;
mod replays;
mod reveal;
pub mod session;
mod system;
mod tls;
mod upload;
mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};

use crate::config::Loaded;
use crate::daemon::admin::Admin;
use crate::state::StoreError;
use crate::state::log::LogEntry;
use access::{Action, allows};
use session::{Ended, Sessions, Who};

/// How many requests may do their blocking work (SQLite, argon2, reading
/// a file) at once, each on one of the console's own threads; the rest
/// queue (the daemon has its workers, reader threads and forwarder on
/// the same cores).
pub const BUSY: usize = 2;

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    admin: Admin,
    loaded: Arc<Loaded>,
    sessions: Arc<Sessions>,
    secure: bool,
    busy: Arc<pool::Pool>,
}

impl Console {
    /// The console's state, and its threads started (`BUSY` of them).
    pub fn new(admin: Admin, loaded: Arc<Loaded>) -> std::io::Result<Console> {
        let c = &loaded.cfg.console;
        Ok(Console {
            sessions: Arc::new(Sessions::new(
                Duration::from_secs(c.idle_timeout_secs),
                Duration::from_secs(c.absolute_timeout_secs),
            )),
            secure: c.tls().is_some(),
            busy: Arc::new(pool::Pool::new(BUSY)?),
            admin,
            loaded,
        })
    }

    fn cfg(&self) -> &crate::config::Config {
        &self.loaded.cfg
    }

    /// Appends `entry` in a transaction of its own.
    fn record(&self, entry: LogEntry<'_>) -> Result<(), StoreError> {
        let mut conn = crate::state::open(&self.cfg().state_db())?;
        crate::state::log::append_alone(&mut conn, self.cfg().tz(), entry)?;
        Ok(())
    }

    /// A read-only connection for one page.
    fn reader(&self) -> Result<rusqlite::Connection, StoreError> {
        crate::state::open_read_only(&self.cfg().state_db())
    }

    /// Runs blocking work (SQLite, argon2, reading a file) off the
    /// async threads, on the console's own threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Console) -> T + Send + 'static,
    ) -> T {
        let c = self.clone();
        self.busy.run(move || f(&c)).await
    }

    /// The session the request carries, or the answer that sends the
    /// visitor to the login page (an ended session is logged as ended).
    async fn who(&self, headers: &HeaderMap) -> Result<Who, Response> {
        let id = session::cookie(headers, session::COOKIE).map(str::to_string);
        // The overview's own refresh (htmx names the element `live`) is
        // not a use: the idle timeout still ends an unattended session.
        let touch = headers.get("hx-trigger").is_none_or(|t| t != "live");
        match self.sessions.find(id.as_deref(), touch) {
            Ok(w) => {
                // `fepd users disable` and `passwd` take effect at once.
                let name = w.user.clone();
                let current = self
                    .blocking(move |c| {
                        let conn = c.reader()?;
                        crate::state::users::get(&conn, &name).map_err(StoreError::from)
                    })
                    .await;
                match current {
                    Ok(Some(u)) if !u.disabled && u.changed_at <= w.since => Ok(Who {
                        reveal: u.reveal,
                        cluster: self.cfg().cluster.is_some(),
                        ..w
                    }),
                    Ok(_) => {
                        self.sessions.end(&w.key);
                        Err(login::expired_page())
                    }
                    Err(e) => Err(store_failed(Some(&w), &e)),
                }
            }
            Err(Ended::None) => Err(html::see_other("/login")),
            Err(e @ (Ended::Idle(_) | Ended::Expired(_))) => {
                let (user, reason) = match &e {
                    Ended::Idle(u) => (u.clone(), "idle"),
                    Ended::Expired(u) => (u.clone(), "expired"),
                    Ended::None => unreachable!(),
                };
                let logged = self
                    .blocking(move |c| {
                        c.record(LogEntry::ConsoleLogout {
                            user: &user,
                            reason,
                        })
                    })
                    .await;
                if let Err(e) = logged {
                    tracing::warn!(error = %e, "console: a session's end could not be logged");
                }
                Err(login::expired_page())
            }
        }
    }

    /// The session, if its role may do `action`; otherwise the refusal,
    /// logged.
    async fn allowed(&self, headers: &HeaderMap, action: Action) -> Result<Who, Response> {
        let who = self.who(headers).await?;
        if allows(who.role, action) {
            return Ok(who);
        }
        Err(self.refuse(&who, action, "role").await)
    }

    /// Logs a refusal and answers with its page.
    async fn refuse(&self, who: &Who, action: Action, reason: &'static str) -> Response {
        let (user, role) = (who.user.clone(), who.role.as_str());
        let logged = self
            .blocking(move |c| {
                c.record(LogEntry::ConsoleRefused {
                    user: &user,
                    role,
                    action: action.as_str(),
                    reason,
                })
            })
            .await;
        if let Err(e) = logged {
            tracing::warn!(error = %e, "console: a refusal could not be logged");
        }
        match reason {
            "csrf" => html::forged(who),
            "dataset" => html::refused(who, "访问该数据集"),
            "self" => html::refused(who, "对自己的账户做此变更（三员分立）"),
            "grant" => html::refused(who, "查看原值（未被授予此权限）"),
            _ => html::refused(who, action_text(action)),
        }
    }

    /// Checks a form's CSRF token against the session's; the refusal is
    /// logged.
    async fn csrf(&self, who: &Who, given: &str, action: Action) -> Result<(), Response> {
        if session::same(given, &who.csrf) {
            return Ok(());
        }
        Err(self.refuse(who, action, "csrf").await)
    }
}

fn action_text(a: Action) -> &'static str {
    match a {
        Action::Overview => "查看总览",
        Action::Batches => "查看批次",
        Action::BatchRetry => "重发批次",
        Action::BatchPark => "搁置批次",
        Action::BatchReplay => "补传批次",
        Action::Log => "查看交换日志",
        Action::Files => "查看文件与拒收记录",
        Action::Reconcile => "查看对账",
        Action::Upload => "上传文件",
        Action::Enqueue => "将文件放入收件箱",
        Action::System => "查看系统信息",
        Action::Users => "管理用户",
        Action::Cluster => "查看集群",
        Action::Reveal => "查看原值",
    }
}

/// A store error on a page: logged for the operator, a Chinese page for
/// the user.
fn store_failed(who: Option<&Who>, e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "console: state database unreadable");
    html::failed(
        who,
        StatusCode::SERVICE_UNAVAILABLE,
        "暂时无法读取状态数据库，请稍后刷新。",
    )
}

/// The console's routes.
pub fn router(console: Console) -> Router {
    // Room to read an oversized file to its end and answer with a page
    // (`upload::read_upload`); a request beyond it is cut off.
    let upload_limit = (console.cfg().console.max_upload_bytes as usize)
        .saturating_mul(4)
        .saturating_add(1 << 20);
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route(assets::HTMX, get(assets::htmx))
        .route(assets::SCRIPT, get(assets::console))
        .route("/logout", post(login::logout))
        .route("/", get(pages::overview))
        .route("/batches", get(batches::list))
        .route("/batches/retry", post(batches::retry))
        .route("/batches/park", post(batches::park))
        .route("/batches/replay", post(batches::replay))
        .route("/batches/replay-range", post(replays::replay_range))
        .route("/log", get(pages::log))
        .route("/system", get(system::show))
        .route("/cluster", get(cluster::show))
        .route("/users", get(users::list))
        .route("/users/add", post(users::add))
        .route("/users/change", post(users::modify))
        .route("/files", get(records::files))
        .route("/files/{id}", get(records::file))
        .route("/files/{id}/errors.xlsx", get(records::file_xlsx))
        .route("/files/{id}/reveal", post(reveal::reveal))
        .route("/rejections", get(records::rejections))
        .route("/reconcile", get(records::reconcile))
        .route(
            "/upload",
            get(upload::form)
                .post(upload::submit)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .with_state(console)
}

/// Serves until `shutdown` completes: over HTTPS when `[console]` names
/// TLS files (read by [`tls::acceptor`] before the daemon starts).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    console: Console,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(console);
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(acceptor) => {
            axum::serve(tls::Listener::new(listener, acceptor), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

pub use tls::acceptor;
