//! `inbox`: one user in many threads lists them with unread counts and last-message previews
//! (CONTRACT §10.1), page by page, as a chat client draws its thread list.

use std::time::Instant;

use futures_util::future::join_all;
use serde_json::Value;

use super::*;
use crate::client::{client, now_us, CHAT_V};
use crate::stats::Stats;

pub fn inbox(ctx: &Ctx, chat_threads: usize, page: usize, readers: usize) -> Result<(), String> {
    let us = users(ctx, 9)?;
    let (reader, owners) = (us[0].clone(), us[1..].to_vec());
    let started = Instant::now();
    let (target, threads) = (ctx.target.clone(), ctx.threads);
    let (r, o) = (reader.clone(), owners.clone());
    let made: usize = join(spawn(threads, move |w| {
        let (target, reader, owners) = (target.clone(), r.clone(), o.clone());
        Box::pin(async move {
            let c = client(None);
            let mut n = 0;
            for i in share(chat_threads, w, threads) {
                let owner = &owners[i % owners.len()];
                let Ok(t) = target
                    .thread(&c, owner, std::slice::from_ref(&reader))
                    .await
                else {
                    continue;
                };
                // 1-3 messages each: unread counts and previews to compute
                for k in 0..(1 + i % 3) {
                    let text = format!("message {k} of thread {i}, long enough to be previewed");
                    let _ = target.send(&c, &owner.token, &t, &text).await;
                }
                n += 1;
            }
            n
        })
    }))
    .into_iter()
    .sum();
    eprintln!(
        "  setup: {made} threads with 1-3 messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (target, dur, token) = (ctx.target.clone(), ctx.duration, reader.token.clone());
    let started = Instant::now();
    let out = join(spawn(threads, move |w| {
        let (target, token) = (target.clone(), token.clone());
        Box::pin(async move {
            let c = client(None);
            let deadline = Instant::now() + dur;
            let loops = share(readers, w, threads).map(|_| {
                let (c, target, token) = (c.clone(), target.clone(), token.clone());
                async move {
                    let mut s = Stats::default();
                    while Instant::now() < deadline {
                        // the whole list, following nextLink
                        let mut url = Some(format!(
                            "{}/chat/threads?maxPageSize={page}&api-version={CHAT_V}",
                            target.base
                        ));
                        while let Some(u) = url.take() {
                            let t0 = now_us();
                            let res = c.get(&u).bearer_auth(&token).send().await;
                            let Ok(mut res) = res else {
                                s.errors += 1;
                                break;
                            };
                            let body: Option<Value> = res.json().limit(16 << 20).await.ok();
                            match body {
                                Some(v)
                                    if res.status() == 200
                                        && v["value"][0]["unreadCount"].is_number() =>
                                {
                                    s.record(now_us() - t0);
                                    url = v["nextLink"].as_str().map(str::to_string);
                                }
                                _ => {
                                    s.errors += 1;
                                    break;
                                }
                            }
                        }
                    }
                    s
                }
            });
            merge(join_all(loops).await)
        })
    }));
    let s = merge(out);
    line(
        "inbox",
        &s,
        started.elapsed().as_secs_f64(),
        "page",
        &format!("  (a user in {made} threads, {page} per page, {readers} readers)"),
    );
    Ok(())
}
