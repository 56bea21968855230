//! The load tool's client side: HMAC identity requests, chat calls and WebSocket sessions over
//! awc, one client per worker thread (awc is single-threaded).

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

pub const CHAT_V: &str = "2024-03-07";
pub const IDENTITY_V: &str = "2023-10-01";

/// Microseconds since the process started: the clock embedded in sent messages, so that
/// any worker thread can compute send→receive latency.
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// An HTTP + WebSocket client with an unbounded connection pool, optionally bound to a
/// loopback source address (each gives its own ~28k ephemeral ports).
pub fn client(local: Option<IpAddr>) -> awc::Client {
    let mut connector = awc::Connector::new()
        .limit(0)
        .timeout(Duration::from_secs(30));
    if let Some(ip) = local {
        connector = connector.local_address(ip);
    }
    awc::Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(60))
        .finish()
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

/// Where confab is and how to sign for it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`
    pub base: String,
    pub key: Vec<u8>,
}

impl Target {
    fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Creates an identity with a chat token (HMAC-signed as the SDKs sign).
    pub async fn user(&self, c: &awc::Client) -> Result<User, String> {
        let path = format!("/identities?api-version={IDENTITY_V}");
        let body = r#"{"createTokenWithScopes":["chat"]}"#;
        let date = httpdate::fmt_http_date(SystemTime::now());
        let signed = confab::auth::hmac::sign(
            &self.key,
            "POST",
            &path,
            self.host(),
            &date,
            body.as_bytes(),
        );
        let mut res = c
            .post(format!("{}{path}", self.base))
            .insert_header(("x-ms-date", date))
            .insert_header(("x-ms-content-sha256", signed.content_hash))
            .insert_header(("authorization", signed.authorization))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = res.json().await.map_err(|e| e.to_string())?;
        if res.status() != 201 {
            return Err(format!("create identity: {} {v}", res.status()));
        }
        Ok(User {
            id: v["identity"]["id"].as_str().unwrap_or_default().to_string(),
            token: v["accessToken"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// Creates a thread of `owner` with `others` (in requests of at most 200 participants, the
    /// ACS limit); returns its id.
    pub async fn thread(
        &self,
        c: &awc::Client,
        owner: &User,
        others: &[User],
    ) -> Result<String, String> {
        let cim = |u: &User| json!({ "communicationIdentifier": { "rawId": u.id, "communicationUser": { "id": u.id } } });
        let mut chunks = others.chunks(200);
        let first: Vec<Value> = chunks.next().unwrap_or_default().iter().map(cim).collect();
        let mut res = c
            .post(format!("{}/chat/threads?api-version={CHAT_V}", self.base))
            .bearer_auth(&owner.token)
            .send_json(&json!({ "topic": "bench", "participants": first }))
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = res.json().limit(1 << 20).await.map_err(|e| e.to_string())?;
        if res.status() != 201 {
            return Err(format!("create thread: {} {v}", res.status()));
        }
        let id = v["chatThread"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for more in chunks {
            let add: Vec<Value> = more.iter().map(cim).collect();
            let mut res = c
                .post(format!(
                    "{}/chat/threads/{id}/participants/:add?api-version={CHAT_V}",
                    self.base
                ))
                .bearer_auth(&owner.token)
                .send_json(&json!({ "participants": add }))
                .await
                .map_err(|e| e.to_string())?;
            let _ = res.body().limit(1 << 20).await;
            if res.status() != 201 {
                return Err(format!("add participants: {}", res.status()));
            }
        }
        Ok(id)
    }

    /// Sends a message; Ok once confab answered 201 (committed).
    pub async fn send(
        &self,
        c: &awc::Client,
        token: &str,
        thread: &str,
        content: &str,
    ) -> Result<(), String> {
        let mut res = c
            .post(format!(
                "{}/chat/threads/{thread}/messages?api-version={CHAT_V}",
                self.base
            ))
            .bearer_auth(token)
            .insert_header(("content-type", "application/json"))
            .send_body(format!(r#"{{"content":"{content}"}}"#))
            .await
            .map_err(|e| e.to_string())?;
        let _ = res.body().await;
        if res.status() == 201 {
            Ok(())
        } else {
            Err(format!("send: {}", res.status()))
        }
    }
}

/// One keep-alive HTTP/1.1 connection, written by hand: the client of the phases that
/// measure request rates (noop, send, cluster). awc costs the load tool ~25 µs of CPU per
/// request, on the cores confab is measured on; this writes each request in one call and
/// parses only the response head.
pub struct Conn {
    host: String,
    conn: Option<tokio::net::TcpStream>,
    buf: Vec<u8>,
    req: Vec<u8>,
}

impl Conn {
    /// For `base` (`http://host:port`); connects on the first request.
    pub fn new(base: &str) -> Conn {
        Conn {
            host: base
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            conn: None,
            buf: Vec::with_capacity(4096),
            req: Vec::with_capacity(1024),
        }
    }

    /// Sends a message; Ok once confab answered 201 (committed).
    pub async fn send(&mut self, token: &str, thread: &str, content: &str) -> Result<(), String> {
        use std::io::Write;
        let body =
            serde_json::to_string(&json!({ "content": content })).map_err(|e| e.to_string())?;
        self.req.clear();
        write!(
            self.req,
            "POST /chat/threads/{thread}/messages?api-version={CHAT_V} HTTP/1.1\r\n\
             Host: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        match self.exchange().await? {
            201 => Ok(()),
            status => Err(format!("send: {status}")),
        }
    }

    /// `GET path`; the response's status.
    pub async fn get(&mut self, path: &str) -> Result<u16, String> {
        use std::io::Write;
        self.req.clear();
        write!(
            self.req,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.host
        )
        .map_err(|e| e.to_string())?;
        self.exchange().await
    }

    /// Writes the request in `req`, reads the whole response; the status. After any error
    /// the connection is dropped and the next request opens a new one.
    async fn exchange(&mut self) -> Result<u16, String> {
        let res = self.round_trip().await;
        if res.is_err() {
            self.conn = None;
        }
        res
    }

    async fn round_trip(&mut self) -> Result<u16, String> {
        use tokio::io::AsyncWriteExt;
        if self.conn.is_none() {
            let s = tokio::net::TcpStream::connect(&self.host)
                .await
                .map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            self.conn = Some(s);
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.write_all(&self.req).await.map_err(|e| e.to_string())?;
        self.buf.clear();
        let (status, end) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) =
                head.parse(&self.buf).map_err(|e| e.to_string())?
            {
                let length = head
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .ok_or("response without content-length")?;
                break (head.code.unwrap_or_default(), len + length);
            }
            read_more(conn, &mut self.buf).await?;
        };
        while self.buf.len() < end {
            read_more(conn, &mut self.buf).await?;
        }
        Ok(status)
    }
}

/// Reads what the connection has into `buf`; an error if the server closed it.
async fn read_more(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    match conn.read_buf(buf).await.map_err(|e| e.to_string())? {
        0 => Err("connection closed".into()),
        _ => Ok(()),
    }
}

/// The send time embedded in a `chatMessageReceived` frame's `message`, if the frame is one.
pub fn sent_at(frame: &[u8]) -> Option<u64> {
    const TYPE: &[u8] = br#""type":"chatMessageReceived""#;
    const MESSAGE: &[u8] = br#""message":""#;
    find(frame, TYPE)?;
    let at = find(frame, MESSAGE)? + MESSAGE.len();
    let digits = frame[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&frame[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// The send times of every `chatMessageReceived` in a long-poll response.
pub fn sent_times(body: &[u8]) -> Vec<u64> {
    const TYPE: &[u8] = br#""type":"chatMessageReceived""#;
    memchr::memmem::find_iter(body, TYPE)
        .filter_map(|i| sent_at(&body[i..]))
        .collect()
}

/// The response's own `cursor`: its first member (`{"cursor":"…",…}`).
pub fn first_cursor(body: &[u8]) -> Option<String> {
    const CURSOR: &[u8] = br#""cursor":""#;
    let at = find(body, CURSOR)? + CURSOR.len();
    let len = body[at..].iter().position(|b| *b == b'"')?;
    String::from_utf8(body[at..at + len].to_vec()).ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_send_time() {
        let f = br#"{"type":"chatMessageReceived","cursor":"a.1","data":{"message":"123456","id":"1"}}"#;
        assert_eq!(super::sent_at(f), Some(123456));
        assert_eq!(super::sent_at(br#"{"type":"pong"}"#), None);
        let poll = br#"{"cursor":"ab12cd34.7","recovered":true,"events":[{"type":"chatMessageReceived","cursor":"ab12cd34.6","data":{"message":"5"}},{"type":"chatMessageReceived","cursor":"ab12cd34.7","data":{"message":"9"}}]}"#;
        assert_eq!(super::sent_times(poll), vec![5, 9]);
        assert_eq!(super::first_cursor(poll).as_deref(), Some("ab12cd34.7"));
    }

    /// The hand-written client reads responses that arrive in pieces, keeps its connection
    /// for the next request, and opens a new one after the server closed it.
    #[test]
    fn conn_reads_whole_responses_and_reconnects() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let mut accepted = 0;
            for stream in listener.incoming().take(2) {
                let mut s = stream.expect("accept");
                accepted += 1;
                let answers: &[&[u8]] = if accepted == 1 {
                    &[
                        b"HTTP/1.1 201 Created\r\ncontent-length: 9\r\n\r\n{\"id\":\"1\"}",
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                    ]
                } else {
                    &[b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"]
                };
                for answer in answers {
                    let mut req = [0u8; 2048];
                    let n = s.read(&mut req).expect("read");
                    assert!(n > 0);
                    // head and body in separate writes
                    let (head, body) = answer.split_at(answer.len() - 3);
                    s.write_all(head).expect("write");
                    s.flush().expect("flush");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    s.write_all(body).expect("write");
                }
                // first connection: closed after two answers
            }
            accepted
        });
        actix_web::rt::System::new().block_on(async move {
            let mut c = super::Conn::new(&format!("http://{addr}"));
            assert_eq!(c.send("t", "th", "m").await, Ok(()));
            assert_eq!(c.get("/livez").await, Ok(200));
            // the server closed the first connection: this request fails, the next reconnects
            assert!(c.get("/livez").await.is_err());
            assert_eq!(c.send("t", "th", "m").await, Err("send: 404".into()));
        });
        assert_eq!(server.join().expect("server"), 2);
    }
}
