//! Logging in and out: `GET /login` (fields `username`, `password`),
//! `POST /login`, `POST /logout`. Wrong passwords count per user; at
//! `[console] lockout_failures` in a row the account is locked for
//! `lockout_secs`. Every outcome is an exchange-log entry.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::access::{Role, verify_password};
use super::html::{page, respond, see_other};
use super::session::{self, COOKIE, LOGIN_COOKIE};
use super::{Console, store_failed};
use crate::state::StoreError;
use crate::state::log::LogEntry;
use crate::state::users;

/// A hash no password matches, verified against when the user is unknown
/// so that the answer takes as long as for a known one.
const NO_USER: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Ol0F1nJ2cPG6q0OHqBUlWGU+gJ8bIbJG8hRKdYgR3c";

fn form_markup(token: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message { p.bad { (m) } }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(token);
            p { label { "用户名 " input name="username" autocomplete="username" required; } }
            p { label { "密码 " input name="password" type="password" autocomplete="current-password" required; } }
            p { button { "登录" } }
        }
    }
}

/// The login page with a fresh form token (and its cookie).
fn login_page(console: &Console, status: StatusCode, message: Option<&str>) -> Response {
    let token = session::token();
    let mut r = respond(status, page("登录", None, form_markup(&token, message)));
    if let Ok(v) = session::set_cookie(LOGIN_COOKIE, &token, console.secure, None).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The page for an ended session: log in again.
pub fn expired_page() -> Response {
    respond(
        StatusCode::UNAUTHORIZED,
        page(
            "会话已结束",
            None,
            html! {
                p.bad { "会话已超时（长时间未操作或超过最长登录时间），请重新登录。" }
                p { a href="/login" { "重新登录" } }
            },
        ),
    )
}

pub async fn form(State(c): State<Console>) -> Response {
    login_page(&c, StatusCode::OK, None)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// What a login attempt came to.
enum Outcome {
    In { role: Role, datasets: Vec<String> },
    Refused(String),
}

pub async fn submit(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same(&f.csrf, expected) {
        return login_page(
            &c,
            StatusCode::FORBIDDEN,
            Some("登录表单已失效或来源不明，请重新输入。"),
        );
    }
    let user = f.username.trim().to_string();
    let u = user.clone();
    let outcome = c.blocking(move |c| attempt(c, &u, &f.password)).await;
    match outcome {
        Ok(Outcome::In { role, datasets }) => {
            let since = crate::state::now_text(c.cfg().tz());
            let id = c.sessions.start(&user, role, datasets, since);
            let mut r = see_other("/");
            let h = r.headers_mut();
            for cookie in [
                session::set_cookie(COOKIE, &id, c.secure, None),
                session::set_cookie(LOGIN_COOKIE, "", c.secure, Some(0)),
            ] {
                if let Ok(v) = cookie.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            r
        }
        Ok(Outcome::Refused(why)) => login_page(&c, StatusCode::UNAUTHORIZED, Some(&why)),
        Err(e) => store_failed(None, &e),
    }
}

/// Checks the password and records the outcome, in one transaction.
fn attempt(c: &Console, name: &str, password: &str) -> Result<Outcome, StoreError> {
    let cfg = &c.cfg().console;
    let tz = c.cfg().tz();
    let wrong = "用户名或密码错误。".to_string();
    let found = {
        let conn = c.reader()?;
        users::get(&conn, name)?
    };
    let now_ms = crate::state::now_ms();
    let Some(u) = found else {
        verify_password(password, NO_USER);
        c.record(LogEntry::ConsoleLoginFailed {
            user: name,
            reason: "unknown_user",
        })?;
        return Ok(Outcome::Refused(wrong));
    };
    if u.locked_until_ms > now_ms {
        c.record(LogEntry::ConsoleLoginFailed {
            user: name,
            reason: "locked",
        })?;
        return Ok(Outcome::Refused(format!(
            "账号因多次密码错误已被锁定，请于 {} 后再试，或请系统管理员重设密码。",
            local_time(u.locked_until_ms, tz)
        )));
    }
    if !verify_password(password, &u.hash) {
        let until_ms = now_ms + cfg.lockout_secs as i64 * 1000;
        let mut conn = crate::state::open(&c.cfg().state_db())?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let locked = users::fail(&tx, name, i64::from(cfg.lockout_failures), until_ms)?;
        crate::state::log::append(
            &tx,
            tz,
            LogEntry::ConsoleLoginFailed {
                user: name,
                reason: "password",
            },
        )?;
        if locked {
            let until = local_time(until_ms, tz);
            crate::state::log::append(
                &tx,
                tz,
                LogEntry::ConsoleLockedOut {
                    user: name,
                    failures: i64::from(cfg.lockout_failures),
                    until: &until,
                },
            )?;
        }
        tx.commit()?;
        if locked {
            c.sessions.end_user(name);
            return Ok(Outcome::Refused(format!(
                "密码连续错误 {} 次，账号已被锁定至 {}。",
                cfg.lockout_failures,
                local_time(until_ms, tz)
            )));
        }
        return Ok(Outcome::Refused(wrong));
    }
    let role = Role::parse(&u.role);
    if u.disabled || role.is_none() {
        c.record(LogEntry::ConsoleLoginFailed {
            user: name,
            reason: "disabled",
        })?;
        return Ok(Outcome::Refused(
            "账号已停用，请联系系统管理员。".to_string(),
        ));
    }
    let role = role.unwrap_or(Role::Auditor);
    let mut conn = crate::state::open(&c.cfg().state_db())?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    users::succeed(&tx, name)?;
    crate::state::log::append(
        &tx,
        tz,
        LogEntry::ConsoleLogin {
            user: name,
            role: role.as_str(),
        },
    )?;
    tx.commit()?;
    Ok(Outcome::In {
        role,
        datasets: u.datasets,
    })
}

fn local_time(ms: i64, tz: chrono::FixedOffset) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let who = match c.who(&headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = c.csrf(&who, &f.csrf, super::Action::Overview).await {
        return r;
    }
    c.sessions.end(&who.key);
    let user = who.user.clone();
    let logged = c
        .blocking(move |c| {
            c.record(LogEntry::ConsoleLogout {
                user: &user,
                reason: "logout",
            })
        })
        .await;
    if let Err(e) = logged {
        tracing::warn!(error = %e, "console: a logout could not be logged");
    }
    let mut r = see_other("/login").into_response();
    if let Ok(v) = session::set_cookie(COOKIE, "", c.secure, Some(0)).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
