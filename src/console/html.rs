//! The pages' frame and the answers every page shares: the layout with the
//! menu a role may use, the refusal page, the error page. Templates are
//! maud's, compiled into the binary; text is Chinese; nothing is loaded
//! from outside the binary and nothing needs JavaScript (htmx and our own
//! script, `assets`, only make lists and the overview update in place and
//! ask before an action).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::access::{Action, allows};
use super::session::Who;

const CSS: &str = "body{font-family:\"Noto Sans CJK SC\",\"WenQuanYi Zen Hei\",\"Microsoft YaHei\",sans-serif;margin:0;color:#222}\
nav{background:#1f3b5a;padding:.5em 1em}nav a{color:#fff;margin-right:1em;text-decoration:none}\
nav .me{color:#cde;float:right}nav form{display:inline}main{padding:1em 2em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.2em .6em;text-align:left}\
th{background:#eef}.bad{color:#b00}.ok{color:#070}.note{color:#555}form.inline{display:inline}";

/// A page in the frame: the menu of what `who` may open, then `body`.
pub fn page(title: &str, who: Option<&Who>, body: Markup) -> Markup {
    let menu = [
        ("/", "总览", Action::Overview),
        ("/batches", "批次", Action::Batches),
        ("/log", "交换日志", Action::Log),
        ("/files", "文件", Action::Files),
        ("/rejections", "拒收记录", Action::Files),
        ("/upload", "上传校验", Action::Upload),
        ("/reconcile", "对账", Action::Reconcile),
        ("/system", "系统", Action::System),
        ("/cluster", "集群", Action::Cluster),
        ("/users", "用户", Action::Users),
    ];
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                title { (title) " · fepd 控制台" }
                style { (PreEscaped(CSS)) }
                // No eval, no inline styles of htmx's own, and no page kept
                // in the browser's storage (a revealed value must not stay).
                meta name="htmx-config" content=r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"historyCacheSize":0,"refreshOnHistoryMiss":true,"selfRequestsOnly":true}"#;
                script src=(super::assets::HTMX) defer {}
                script src=(super::assets::SCRIPT) defer {}
            }
            body {
                @if let Some(w) = who {
                    nav {
                        @for (href, name, action) in menu {
                            @if allows(w.role, action) && (action != Action::Cluster || w.cluster) {
                                a href=(href) { (name) }
                            }
                        }
                        span.me {
                            (w.user) "（" (w.role.title()) "） "
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(w.csrf);
                                button { "退出" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// An HTML answer with the console's headers: never cached, never framed.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

/// 403: the role may not do this (the refusal is also an exchange-log
/// entry, written by the caller).
pub fn refused(who: &Who, what: &str) -> Response {
    respond(
        StatusCode::FORBIDDEN,
        page(
            "无权操作",
            Some(who),
            html! {
                p.bad { "您的角色（" (who.role.title()) "）无权" (what) "。此次尝试已记入交换日志。" }
                p { a href="/" { "返回总览" } }
            },
        ),
    )
}

/// 403: a form without the session's token (forged, or from an old page).
pub fn forged(who: &Who) -> Response {
    respond(
        StatusCode::FORBIDDEN,
        page(
            "请求无效",
            Some(who),
            html! {
                p.bad { "表单校验失败（缺少或错误的安全令牌），操作未执行。请从控制台页面重新提交。此次请求已记入交换日志。" }
                p { a href="/" { "返回总览" } }
            },
        ),
    )
}

/// A page saying what went wrong on the server side (the state database
/// unreadable, say), without the details of the error.
pub fn failed(who: Option<&Who>, status: StatusCode, what: &str) -> Response {
    respond(status, page("出错了", who, html! { p.bad { (what) } }))
}

/// A redirect after a form (303: the browser fetches the page with GET).
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}
