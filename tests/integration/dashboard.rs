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
    let page = c
        .get(format!("{}/login", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let page = c
        .get(format!("{}/login", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let requests = c
        .get(format!("{}/requests", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let found = c
        .get(format!("{}/requests?id={id}", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(found.contains(&format!("grep {id} confab.log")), "{found}");
    assert!(
        !page("?id=<script>").await.contains("<script>"),
        "only request ids are echoed"
    );
    let threads = c
        .get(format!("{}/threads", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // the busiest threads by topic, with participants and messages (no content)
    let row = threads
        .split("<tr>")
        .find(|r| r.contains(&format!("<code>{t}</code>")))
        .expect("the thread among the busiest");
    assert!(
        row.starts_with("<td>test</td><td>1</td><td>3</td><td>20"),
        "{row}"
    );
    assert!(
        !threads.contains("m0"),
        "no message content on the Threads page"
    );
    assert!(threads.contains("id=\"total-threads\">1<"), "{threads}");
    let alerts = c
        .get(format!("{}/alerts", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let threads = c
        .get(format!("{}/threads", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let threads = c
        .get(format!("{}/threads", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let table = &threads[threads.find("id=\"negative-threads\"").expect(&threads)..];
    assert!(
        table.contains("<tr><td>Complaints desk</td><td>2</td><td>50.0%</td>"),
        "{table}"
    );
    assert!(
        table.contains("<tr><td>test</td><td>1</td><td>50.0%</td>"),
        "{table}"
    );
    let first = table.find("Complaints desk").unwrap();
    assert!(
        first < table.find("<td>test</td>").unwrap(),
        "most negative first"
    );
    let overview = c
        .get(format!("{}/", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
