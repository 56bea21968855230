//! Signing in and out: the access key (primary or secondary) opens a session; both forms carry
//! a CSRF token.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::session::{self, random_token, same};
use super::{form, redirect, render, DashboardState, SignedIn};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize, Default)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

/// GET /login
pub async fn login_page(req: HttpRequest, app: web::Data<DashboardState>) -> HttpResponse {
    if app.sessions.get(&req).is_some() {
        return redirect("/");
    }
    let csrf = random_token();
    let mut res = render(LoginPage {
        csrf: csrf.clone(),
        error: None,
    });
    let _ = res.add_cookie(&session::cookie(
        session::LOGIN_COOKIE,
        csrf,
        std::time::Duration::from_secs(3600),
    ));
    res
}

/// POST /login — the access key (primary or secondary) opens a session.
pub async fn login(
    req: HttpRequest,
    app: web::Data<DashboardState>,
    body: web::Bytes,
) -> HttpResponse {
    let form: LoginForm = form(&body);
    let expected = req
        .cookie(session::LOGIN_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if expected.is_empty() || !same(&expected, &form.csrf) {
        return HttpResponse::Forbidden().body("missing or wrong CSRF token");
    }
    let address = req.peer_addr().map(|a| a.ip());
    let now = std::time::Instant::now();
    if let Some(wait) = address.and_then(|a| app.login_throttle.wait(a, now)) {
        // The key is not even checked while the address waits.
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut res = login_again(format!(
            "Too many wrong keys from your address: try again in {secs} s."
        ));
        *res.status_mut() = actix_web::http::StatusCode::TOO_MANY_REQUESTS;
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(secs),
        );
        return res;
    }
    let c = &app.config;
    let key = form.key.trim();
    let ok = same(key, c.primary_key())
        || c.secondary_access_key
            .as_ref()
            .is_some_and(|s| same(key, s.expose()));
    if !ok {
        metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => "dashboard_login")
            .increment(1);
        if let Some(a) = address {
            app.login_throttle.failed(a, now);
        }
        let mut res = login_again("That is not this instance's access key.".into());
        *res.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
        return res;
    }
    if let Some(a) = address {
        app.login_throttle.succeeded(a);
    }
    let mut res = redirect("/");
    let _ = res.add_cookie(&app.sessions.create());
    res
}

/// The login page again, with `error` and a fresh CSRF token.
fn login_again(error: String) -> HttpResponse {
    let csrf = random_token();
    let mut res = render(LoginPage {
        csrf: csrf.clone(),
        error: Some(error),
    });
    let _ = res.add_cookie(&session::cookie(
        session::LOGIN_COOKIE,
        csrf,
        std::time::Duration::from_secs(3600),
    ));
    res
}

/// POST /logout (CSRF-protected).
pub async fn logout(
    req: HttpRequest,
    SignedIn(s): SignedIn,
    app: web::Data<DashboardState>,
    body: web::Bytes,
) -> HttpResponse {
    let form: CsrfForm = form(&body);
    if !form.csrf.as_deref().is_some_and(|c| same(c, &s.csrf)) {
        return HttpResponse::Forbidden().body("missing or wrong CSRF token");
    }
    app.sessions.remove(&req);
    let mut res = redirect("/login");
    let _ = res.add_removal_cookie(&session::cookie(
        session::COOKIE,
        String::new(),
        session::TTL,
    ));
    res
}
