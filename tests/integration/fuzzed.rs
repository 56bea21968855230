//! Inputs the fuzz targets (`fuzz/`) found crashing a parser, replayed over HTTP as a client
//! would send them: each must get a clear 4xx, and the server must keep serving.

use serde_json::json;

use crate::common::*;

/// fuzz target `ids`, `crash-915e9b17…`: a time with a multi-byte character across its 20th
/// byte (`ÿÿÿÿÿÿÿ$`) panicked `parse_time` on a slice inside that character. It reaches the
/// parser as `startTime` and as a participant's `shareHistoryTime`.
#[tokio::test]
async fn a_time_with_a_multibyte_character_at_its_20th_byte_is_a_400() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[]).await;
    let bad = "\u{FFFD}".repeat(7) + "$";
    let q = confab::ids::encode_query(&bad);
    for path in [
        format!("/chat/threads?startTime={q}"),
        format!("/chat/threads/{}/messages?startTime={q}", enc(&t)),
    ] {
        let r = app.chat(&a, reqwest::Method::GET, &path, None).await;
        assert_error(r, 400, "InvalidRequest").await;
    }
    let r = app
        .chat(
            &a,
            reqwest::Method::POST,
            &format!("/chat/threads/{}/participants/:add", enc(&t)),
            Some(json!({"participants": [{
                "communicationIdentifier": {"rawId": b.id},
                "shareHistoryTime": bad,
            }]})),
        )
        .await;
    assert_error(r, 400, "InvalidRequest").await;
    // still serving
    app.send(&a, &t, "still here").await;
}
