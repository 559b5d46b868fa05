//! 用户 (the system administrator's page): the console's users listed,
//! added, disabled or enabled, their password reset and their grant to
//! see personal values given or withdrawn — through `accounts::apply`,
//! the function `fepd users` calls, so the password rule and the
//! `user_changed` entries (`by` the administrator) are the same. An
//! administrator cannot grant themselves the reveal nor disable
//! themselves (三员分立): the refusal is a `console_refused` entry with
//! reason `self`.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::access::{Action, Role};
use super::accounts::{self, Change};
use super::html::{page, respond, see_other};
use super::{Console, store_failed};

pub async fn list(State(c): State<Console>, headers: HeaderMap) -> Response {
    let who = match c.allowed(&headers, Action::Users).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let found = c
        .blocking(|c| -> Result<_, crate::state::StoreError> {
            Ok(crate::state::users::list(&c.reader()?)?)
        })
        .await;
    let users = match found {
        Ok(u) => u,
        Err(e) => return store_failed(Some(&who), &e),
    };
    let now = crate::state::now_ms();
    let body = html! {
        table {
            tr { th { "用户" } th { "角色" } th { "数据集" } th { "状态" } th { "可查看原值" }
                 th { "最近变更" } th { "操作" } }
            @for u in &users {
                tr {
                    td { (u.name) }
                    td { (Role::parse(&u.role).map_or(u.role.as_str(), |r| r.title())) }
                    td { (u.datasets.join("、")) }
                    td { @if u.disabled { "已停用" } @else if u.locked_until_ms > now { "已锁定" } @else { "正常" } }
                    td { @if u.reveal { "是" } @else { "否" } }
                    td { (u.changed_at) }
                    td {
                        @if u.name != who.user {
                            form.inline.confirm method="post" action="/users/change"
                                data-confirm="确定变更该用户吗？" {
                                input type="hidden" name="csrf" value=(who.csrf);
                                input type="hidden" name="name" value=(u.name);
                                @if u.disabled {
                                    button name="op" value="enable" { "启用" }
                                } @else {
                                    button name="op" value="disable" { "停用" }
                                }
                                @if u.reveal {
                                    button name="op" value="unreveal" { "收回查看原值" }
                                } @else {
                                    button name="op" value="reveal" { "授予查看原值" }
                                }
                            }
                        }
                        form.inline method="post" action="/users/change" {
                            input type="hidden" name="csrf" value=(who.csrf);
                            input type="hidden" name="name" value=(u.name);
                            input type="password" name="password" placeholder="新密码" autocomplete="new-password" required;
                            button name="op" value="password" { "重置密码" }
                        }
                    }
                }
            }
        }
        h2 { "新增用户" }
        form method="post" action="/users/add" {
            input type="hidden" name="csrf" value=(who.csrf);
            "用户名 " input name="name" required;
            " 角色 " select name="role" {
                @for r in Role::ALL { option value=(r.as_str()) { (r.title()) } }
            }
            " 数据集（数据专员，逗号分隔） " input name="datasets";
            " 密码 " input type="password" name="password" autocomplete="new-password" required;
            " " label { input type="checkbox" name="reveal" value="1"; "可查看原值" }
            " " button { "新增" }
        }
        p.note { "密码至少 10 个字符，并包含大写字母、小写字母、数字、其他符号中的至少三类。每次变更都记入交换日志。" }
    };
    respond(StatusCode::OK, page("用户", Some(&who), body))
}

#[derive(serde::Deserialize, Default)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    datasets: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    reveal: String,
    /// `password`, `disable`, `enable`, `reveal` or `unreveal`.
    #[serde(default)]
    op: String,
}

pub async fn add(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<UserForm>,
) -> Response {
    change(c, headers, f, true).await
}

pub async fn modify(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<UserForm>,
) -> Response {
    change(c, headers, f, false).await
}

async fn change(c: Console, headers: HeaderMap, f: UserForm, adding: bool) -> Response {
    let who = match c.allowed(&headers, Action::Users).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = c.csrf(&who, &f.csrf, Action::Users).await {
        return r;
    }
    let name = f.name.trim().to_string();
    // 三员分立: the administrator neither grants themselves the reveal nor
    // locks themselves out.
    if !adding && name == who.user && matches!(f.op.as_str(), "reveal" | "disable") {
        return c.refuse(&who, Action::Users, "self").await;
    }
    let by = who.user.clone();
    let done = c
        .blocking(move |c| {
            let datasets: Vec<String> = f
                .datasets
                .split([',', '，', '、'])
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect();
            let change = if adding {
                let Some(role) = Role::parse(&f.role) else {
                    return Ok(Err("请选择角色。".to_string()));
                };
                if name.is_empty() {
                    return Ok(Err("请填写用户名。".to_string()));
                }
                Change::Add {
                    name: &name,
                    role,
                    datasets: &datasets,
                    password: &f.password,
                    reveal: f.reveal == "1",
                }
            } else {
                match f.op.as_str() {
                    "password" => Change::Password {
                        name: &name,
                        password: &f.password,
                    },
                    "disable" | "enable" => Change::Disabled {
                        name: &name,
                        disabled: f.op == "disable",
                    },
                    "reveal" | "unreveal" => Change::Reveal {
                        name: &name,
                        reveal: f.op == "reveal",
                    },
                    _ => return Ok(Err("无法识别的操作。".to_string())),
                }
            };
            let mut conn = crate::state::open(&c.cfg().state_db())?;
            Ok::<_, crate::state::StoreError>(
                accounts::apply(&mut conn, c.cfg(), change, &by)?.map_err(|r| r.chinese(&name)),
            )
        })
        .await;
    match done {
        Ok(Ok(_)) => see_other("/users"),
        Ok(Err(why)) => respond(
            StatusCode::BAD_REQUEST,
            page(
                "用户",
                Some(&who),
                html! { p.bad { (why) } p { a href="/users" { "返回用户" } } },
            ),
        ),
        Err(e) => store_failed(Some(&who), &e),
    }
}
