//! `dashboard`: how fast the admin pages answer with many threads and a month of usage. It
//! creates the threads (one message each, so that every one is "active" in the Threads page's
//! window), writes 30 days of hourly usage into the database the Usage page reads, waits until
//! the dashboard's fine sample tier is full, signs in, and requests every page one after
//! another, printing the time to the last byte per page.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use futures_util::StreamExt;

use super::*;
use crate::client::client;

/// Pages measured, in order (`{thread}` is one of the bench's threads).
const PAGES: [&str; 11] = [
    "/",
    "/?range=15m",
    "/?range=24h",
    "/usage",
    "/usage.csv",
    "/threads",
    "/threads/{thread}",
    "/requests",
    "/alerts",
    "/webhooks",
    "/cluster",
];

pub struct DashboardLoad<'a> {
    pub admin: &'a str,
    /// The database the server uses (the usage history is written there).
    pub database: &'a str,
    pub chat_threads: usize,
    /// Requests per page.
    pub rounds: usize,
    /// Until when to wait for the sampler (the server's start plus its fine tier's span).
    pub sampled_by: Instant,
}

pub fn dashboard(ctx: &Ctx, load: &DashboardLoad) -> Result<(), String> {
    let us = users(ctx, 8)?;
    let started = Instant::now();
    let (target, threads, n) = (ctx.target.clone(), ctx.threads, load.chat_threads);
    let made: Vec<Vec<String>> = join(spawn(threads, move |w| {
        let (target, us) = (target.clone(), us.clone());
        Box::pin(async move {
            let c = client(None);
            futures_util::stream::iter(share(n, w, threads))
                .map(|i| {
                    let (c, target, owner) = (c.clone(), target.clone(), us[i % us.len()].clone());
                    async move {
                        let t = target.thread(&c, &owner, &[]).await.ok()?;
                        target
                            .send(&c, &owner.token, &t, "one message")
                            .await
                            .ok()?;
                        Some(t)
                    }
                })
                .buffer_unordered(32)
                .filter_map(|t| async move { t })
                .collect()
                .await
        })
    }));
    let made: Vec<String> = made.into_iter().flatten().collect();
    eprintln!(
        "  setup: {} threads with a message each in {:.1} s",
        made.len(),
        started.elapsed().as_secs_f64()
    );
    if made.len() < n {
        note_failure();
        eprintln!("  {} threads could not be created", n - made.len());
    }
    let hours = seed_usage(load.database)?;
    eprintln!("  setup: {hours} hours of usage written (30 days)");
    let wait = load.sampled_by.saturating_duration_since(Instant::now());
    if !wait.is_zero() {
        eprintln!(
            "  waiting {:.0} s for the dashboard's sample history to fill",
            wait.as_secs_f64()
        );
        std::thread::sleep(wait);
    }

    let admin = load.admin.to_string();
    let thread = made.first().cloned().unwrap_or_default();
    let rounds = load.rounds;
    block(async move {
        // a redirect is an answer here (the login's 303), not something to follow
        let c = awc::Client::builder()
            .disable_redirects()
            .timeout(Duration::from_secs(30))
            .finish();
        let cookie = sign_in(&c, &admin, &ctx.target.key).await?;
        for page in PAGES {
            let path = page.replace(
                "{thread}",
                &percent_encoding::utf8_percent_encode(&thread, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
            let url = format!("{admin}{path}");
            let mut times = Vec::with_capacity(rounds);
            let mut bytes = 0;
            for i in 0..rounds + 5 {
                let t = Instant::now();
                let mut r = c
                    .get(&url)
                    .insert_header(("cookie", cookie.as_str()))
                    .send()
                    .await
                    .map_err(|e| format!("{page}: {e}"))?;
                let body = r
                    .body()
                    .limit(64 << 20)
                    .await
                    .map_err(|e| format!("{page}: {e}"))?;
                if r.status() != 200 {
                    note_failure();
                    return Err(format!("{page}: status {}", r.status()));
                }
                // the first five warm the caches
                if i >= 5 {
                    times.push(t.elapsed());
                }
                bytes = body.len();
            }
            times.sort_unstable();
            let q = |p: f64| {
                times[((times.len() as f64 * p) as usize).min(times.len() - 1)].as_secs_f64()
                    * 1000.0
            };
            println!(
                "dashboard {page:<18} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} requests, {} KiB)",
                q(0.5),
                q(0.99),
                times.last().copied().unwrap_or(Duration::ZERO).as_secs_f64() * 1000.0,
                times.len(),
                bytes / 1024
            );
        }
        Ok(())
    })
}

/// Signs in with the access key: the login form's CSRF token and cookie, then the session
/// cookie. Returns the `Cookie` header to send.
async fn sign_in(c: &awc::Client, admin: &str, key: &[u8]) -> Result<String, String> {
    use base64::Engine;
    let mut form = c
        .get(format!("{admin}/login"))
        .send()
        .await
        .map_err(|e| format!("login page: {e}"))?;
    let login_cookie = cookies(form.headers());
    let html = form.body().await.map_err(|e| e.to_string())?;
    let html = String::from_utf8_lossy(&html);
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or("no csrf token on the login page")?
        .to_string();
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let r = c
        .post(format!("{admin}/login"))
        .insert_header(("cookie", login_cookie))
        .send_form(&[("key", key.as_str()), ("csrf", csrf.as_str())])
        .await
        .map_err(|e| format!("login: {e}"))?;
    if r.status() != 303 {
        return Err(format!("login answered {}", r.status()));
    }
    Ok(cookies(r.headers()))
}

/// `name=value; …` of every `Set-Cookie`.
fn cookies(h: &awc::http::header::HeaderMap) -> String {
    h.get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes 30 days of hourly usage before the current hour (slot -1: apart from the server's
/// own counts). Returns the hours written.
fn seed_usage(database: &str) -> Result<usize, String> {
    use confab::store::schema::usage_hours as u;
    use confab::store::usage::{hour_of, HOUR_MS};
    let mut conn = confab::store::connection::connect(
        database,
        confab::store::connection::ConnSetup {
            sync: confab::store::connection::SqliteSync::Normal,
            writer: false,
        },
    )?;
    let now = hour_of(confab::ids::now_ms());
    let rows: Vec<_> = (1..=30 * 24_i64)
        .map(|k| {
            (
                u::hour.eq(now - k * HOUR_MS),
                u::slot.eq(-1_i64),
                u::messages.eq(1_000 + (k * 37) % 900),
                u::threads.eq(10 + k % 7),
                u::identities.eq(5 + k % 3),
            )
        })
        .collect();
    let n = rows.len();
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        for row in rows {
            diesel::insert_into(u::table).values(row).execute(c)?;
        }
        Ok(())
    })
    .map_err(|e| format!("writing usage: {e}"))?;
    Ok(n)
}
