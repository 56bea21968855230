//! The admin dashboard: login, session, CSRF, and pages that show the registry's numbers.

use reqwest::redirect::Policy;
use reqwest::Method;

use crate::common::*;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The hidden `csrf` value of the first form on a page.
fn csrf_of(html: &str) -> String {
    let i =
        html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[i..].split('"').next().unwrap().to_string()
}

/// Opens the login form and posts `key` with its CSRF token.
async fn sign_in_with(app: &TestApp, c: &reqwest::Client, key: &str) -> reqwest::Response {
    let page = get_text(c, format!("{}/login", app.admin)).await.1;
    c.post(format!("{}/login", app.admin))
        .form(&[("key", key), ("csrf", csrf_of(&page).as_str())])
        .send()
        .await
        .unwrap()
}

async fn login(app: &TestApp, c: &reqwest::Client) -> String {
    let r = sign_in_with(app, c, &app.key).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Max-Age="), "{cookie}");
    let overview = c.get(format!("{}/", app.admin)).send().await.unwrap();
    assert_eq!(overview.status(), 200);
    overview.text().await.unwrap()
}

/// Without a session every page redirects to the login; a wrong key is refused; with the
/// access key the pages answer 200 with the registry's numbers.
#[tokio::test]
async fn dashboard_login_and_pages() {
    let app = TestApp::spawn_with(&["--dashboard-sample-interval", "100ms"]).await;
    let c = browser();
    for page in ["/", "/requests", "/threads", "/alerts"] {
        let r = c.get(format!("{}{page}", app.admin)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{page}");
        assert_eq!(r.headers()["location"], "/login");
    }
    // a wrong key
    let page = get_text(&c, format!("{}/login", app.admin)).await.1;
    let r = c
        .post(format!("{}/login", app.admin))
        .form(&[("key", "d3Jvbmc="), ("csrf", csrf_of(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // some traffic, then the numbers
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    for i in 0..3 {
        app.send(&a, &t, &format!("m{i}")).await;
    }
    let r = app
        .chat(
            &a,
            Method::GET,
            "/chat/threads/19:00000000000000000000000000000000@thread.v2",
            None,
        )
        .await;
    assert_eq!(r.status(), 404);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let overview = login(&app, &c).await;
    assert!(overview.contains("Messages sent per minute"), "{overview}");
    assert!(
        overview.contains("<polyline"),
        "charts are drawn once there are two samples"
    );
    let requests = get_text(&c, format!("{}/requests", app.admin)).await.1;
    assert!(
        requests.contains("<code>/chat/threads/{t}/messages</code>"),
        "{requests}"
    );
    assert!(
        requests.contains("<td>404</td>"),
        "the 404 is among the recent errors"
    );
    // the 404 is counted in the route's 4xx column (1 of 1 request in the window)
    let row = requests
        .split("<tr>")
        .find(|r| r.starts_with("<td><code>/chat/threads/{t}</code></td><td>GET</td>"))
        .expect("a row for GET /chat/threads/{t}");
    assert!(
        row.contains("<td>1 (100.0%)</td><td>0 (0.0%)</td>"),
        "{row}"
    );
    let page = |q: &'static str| {
        let c = c.clone();
        let url = format!("{}/requests{q}", app.admin);
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(page("?class=4xx").await.contains("<td>404</td>"));
    assert!(
        !page("?class=5xx").await.contains("<td>404</td>"),
        "a 404 is not a 5xx"
    );
    // each request id leads to how to find it in the log
    let id = requests
        .split("id=")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a request id link")
        .to_string();
    let found = get_text(&c, format!("{}/requests?id={id}", app.admin))
        .await
        .1;
    assert!(found.contains(&format!("grep {id} confab.log")), "{found}");
    assert!(
        !page("?id=<script>").await.contains("<script>"),
        "only request ids are echoed"
    );
    let threads = get_text(&c, format!("{}/threads", app.admin)).await.1;
    // the busiest threads by topic, with participants and messages (no content)
    let row = threads
        .split("<tr>")
        .find(|r| r.contains(&format!("<code>{t}</code>")))
        .expect("the thread among the busiest");
    assert!(
        row.starts_with(&format!(
            "<td><a href=\"/threads/{}\">test</a></td><td>1</td><td>3</td><td>20",
            t.replace(':', "%3A")
                .replace('@', "%40")
                .replace('.', "%2E")
        )),
        "{row}"
    );
    assert!(
        !threads.contains("m0"),
        "no message content on the Threads page"
    );
    assert!(threads.contains("id=\"total-threads\">1<"), "{threads}");
    let alerts = get_text(&c, format!("{}/alerts", app.admin)).await.1;
    for rule in [
        "ConfabHighErrorRatio",
        "ConfabHighLatencyP99",
        "ConfabErrorBudgetBurn",
        "ConfabSlowConsumerSpike",
        "ConfabAuthFailureSpike",
    ] {
        assert!(
            alerts.contains(&format!("<td>{rule}</td>")),
            "{rule} missing in {alerts}"
        );
    }
    // a second of samples judges no 5-minute rule
    assert!(!alerts.contains("FIRING"), "{alerts}");
    assert!(alerts.contains("collecting data"), "{alerts}");
}

/// Forms without the right CSRF token are refused: logout with a session, login without the
/// login cookie's token.
#[tokio::test]
async fn dashboard_csrf() {
    let app = TestApp::spawn().await;
    let c = browser();
    let overview = login(&app, &c).await;
    let r = c
        .post(format!("{}/logout", app.admin))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{}/logout", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no token at all");
    assert_eq!(
        c.get(format!("{}/", app.admin))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "still logged in"
    );
    let r = c
        .post(format!("{}/logout", app.admin))
        .form(&[("csrf", csrf_of(&overview).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        c.get(format!("{}/", app.admin))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "logged out"
    );
    // a login post from another site carries no login cookie
    let other = browser();
    let r = other
        .post(format!("{}/login", app.admin))
        .form(&[("key", app.key.as_str()), ("csrf", "guessed")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// §10.2 on the dashboard: the share of negative messages on the Overview, and the threads with
/// the most negative messages in the last hour (topic, count, share) on Threads.
#[tokio::test]
async fn dashboard_sentiment_panel() {
    let app = TestApp::spawn_with(&["--dashboard-sample-interval", "100ms"]).await;
    let c = browser();
    login(&app, &c).await;
    let a = app.user().await;
    let threads = get_text(&c, format!("{}/threads", app.admin)).await.1;
    assert!(threads.contains("id=\"no-negative\""), "{threads}");
    let r = app
        .chat(
            &a,
            Method::POST,
            "/chat/threads",
            Some(serde_json::json!({"topic": "Complaints desk"})),
        )
        .await;
    let angry: serde_json::Value = r.json().await.unwrap();
    let angry = angry["chatThread"]["id"].as_str().unwrap().to_string();
    let calm = app.thread(&a, &[&a]).await;
    for text in [
        "This is terrible, I hate it.",
        "Awful service, I am furious.",
        "Thanks, that helps a lot!",
        "The meeting is at 3 pm in room 4.",
    ] {
        app.send(&a, &angry, text).await;
    }
    app.send(&a, &calm, "What a horrible, sad day.").await;
    app.send(&a, &calm, "Great news, well done!").await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let threads = get_text(&c, format!("{}/threads", app.admin)).await.1;
    let table = &threads[threads.find("id=\"negative-threads\"").expect(&threads)..];
    assert!(
        table.contains("\">Complaints desk</a></td><td>2</td><td>50.0%</td>"),
        "{table}"
    );
    assert!(
        table.contains("\">test</a></td><td>1</td><td>50.0%</td>"),
        "{table}"
    );
    let first = table.find("Complaints desk").unwrap();
    assert!(
        first < table.find("\">test</a>").unwrap(),
        "most negative first"
    );
    let overview = get_text(&c, format!("{}/", app.admin)).await.1;
    assert!(
        overview.contains("Negative messages (share of those scored)"),
        "{overview}"
    );
}

/// Finding 6 of the hardening issue: 40 wrong keys in 0.07 s were all checked. After five
/// failures an address must wait, doubling from 1 s, and while it waits even the right key is
/// refused unchecked (429 with Retry-After); once the wait is over the right key signs in.
/// Every answer of the admin listener carries the browser security headers.
#[tokio::test]
async fn dashboard_login_is_throttled_and_pages_are_locked_down() {
    let app = TestApp::spawn().await;
    let c = browser();
    let attempt = async |key: &str| sign_in_with(&app, &c, key).await;
    for _ in 0..5 {
        assert_eq!(attempt("d3Jvbmc=").await.status(), 401);
    }
    for key in ["d3Jvbmc=", app.key.as_str()] {
        let r = attempt(key).await;
        assert_eq!(r.status(), 429, "{key}");
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(r.text().await.unwrap().contains("try again in 1 s"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = attempt(app.key.as_str()).await;
    assert_eq!(r.status(), 303);

    for path in ["/login", "/", "/static/dashboard.css"] {
        let r = c.get(format!("{}{path}", app.admin)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
}

async fn get_text(c: &reqwest::Client, url: String) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The text of the element with `id` up to its closing tag's `<`.
fn element<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find("</").unwrap() + start;
    &rest[start..end]
}

/// A confab process of its own on `dir` (the registry is per process: the in-process test
/// apps share one), with its TestApp handle and admin address.
/// On `database` (PostgreSQL) when given, else on SQLite in `dir`.
fn own_confab(dir: &std::path::Path, database: Option<&str>) -> (crate::binary::Server, TestApp) {
    let data = dir.to_str().unwrap();
    let mut args = vec!["--data-dir", data, "--dashboard-sample-interval", "100ms"];
    if let Some(url) = database {
        args.extend(["--database-url", url]);
    }
    let (server, base, banner) = crate::binary::serve_with_banner(&args);
    let admin = banner
        .split("metrics: ")
        .nth(1)
        .and_then(|r| r.split("/metrics").next())
        .expect("the banner names the admin listener")
        .to_string();
    let mut app = crate::binary::app_for(&base, tempfile::tempdir().unwrap());
    app.admin = admin;
    (server, app)
}

/// A known workload (7 messages by 2 users in 2 threads, 3 identities) on a confab of its own:
/// the Overview's totals, the Usage page and its CSV (from the database, so also after a
/// restart), and the thread page say exactly that.
#[tokio::test]
async fn dashboard_totals_usage_and_thread_page() {
    let dir = tempfile::tempdir().unwrap();
    // (PostgreSQL counts with triggers, SQLite in the writer: both are checked in CI)
    let database = test_database();
    let (mut server, app) = own_confab(dir.path(), database.as_deref());
    let (a, b, _idle) = (app.user().await, app.user().await, app.user().await);
    let t1 = app.thread(&a, &[&b]).await;
    let t2 = app.thread(&b, &[]).await;
    for i in 0..4 {
        app.send(&a, &t1, &format!("private words {i}")).await;
    }
    for i in 0..3 {
        app.send(&b, &t2, &format!("b{i}")).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let c = browser();
    let overview = login(&app, &c).await;
    let tile = |id: &str| {
        let at = overview.find(&format!("id=\"{id}\"")).expect(id);
        let card = &overview[at..];
        let value = &card[card.find("class=\"value\">").unwrap() + "class=\"value\">".len()..];
        value[..value.find('<').unwrap()].to_string()
    };
    assert_eq!(tile("messages-hour"), "7");
    assert!(overview.contains("7 in the last 24 hours"), "{overview}");
    assert!(overview.contains("7 since start"), "{overview}");
    assert_eq!(tile("active-users"), "2", "distinct senders");
    assert_eq!(tile("threads-created"), "2");
    assert!(
        overview.contains("identities created: 3 in the last hour"),
        "{overview}"
    );
    assert!(overview.contains("id=\"range-label\">last 1 hour: data since"));
    // the range selector
    let (status, quarter) = get_text(&c, format!("{}/?range=15m", app.admin)).await;
    assert_eq!(status, 200);
    assert!(quarter.contains("<strong>15 minutes</strong>"), "{quarter}");
    assert!(quarter.contains("href=\"/?range=24h\""));

    // Usage, from the database: today's row and the last hour's
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let check_usage = |usage: &str| {
        assert_eq!(element(usage, "total-messages"), "7");
        assert_eq!(element(usage, "total-threads"), "2");
        assert_eq!(element(usage, "total-identities"), "3");
        let day_row = usage
            .split("<tr>")
            .find(|r| r.starts_with(&format!("<td>{today}</td>")))
            .expect("today's row");
        assert!(
            day_row.starts_with(&format!("<td>{today}</td><td>7</td><td>2</td><td>3</td>")),
            "{day_row}"
        );
    };
    let (status, usage) = get_text(&c, format!("{}/usage", app.admin)).await;
    assert_eq!(status, 200);
    check_usage(&usage);
    let r = c
        .get(format!("{}/usage.csv", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "granularity,period_start,messages_sent,threads_created,identities_created"
    );
    assert_eq!(lines.len(), 1 + 30 + 48);
    assert!(
        lines[1].starts_with(&format!("day,{today}T00:00:00.000Z,7,2,3")),
        "{csv}"
    );
    assert!(
        lines[31].starts_with("hour,") && lines[31].ends_with(",7,2,3"),
        "{csv}"
    );

    // the thread page: participants, the last 5 minutes, no content
    let (status, page) = get_text(&c, format!("{}/threads/{}", app.admin, enc(&t1))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(element(&page, "thread-topic"), "test");
    assert_eq!(element(&page, "thread-participants"), "2");
    assert_eq!(element(&page, "thread-recent"), "4");
    assert!(!page.contains("private words"), "no message content");
    let (status, _) = get_text(
        &c,
        format!("{}/threads/{}", app.admin, enc("19:nope@thread.v2")),
    )
    .await;
    assert_eq!(status, 404);
    // signed out, nothing
    let r = browser()
        .get(format!("{}/usage.csv", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // after a restart (SIGKILL: nothing is flushed on the way out) the registry starts over,
    // the database's usage does not
    server.kill();
    let (_server, app) = own_confab(dir.path(), database.as_deref());
    let c = browser();
    let overview = login(&app, &c).await;
    assert!(overview.contains("0 since start"), "{overview}");
    let (_, usage) = get_text(&c, format!("{}/usage", app.admin)).await;
    check_usage(&usage);
}
