//! `cluster`: several nodes on one PostgreSQL and one NATS (contract §9). Three phases:
//! - `cluster-light`: members connected to every node but the first, sends through the first
//!   at a light rate, so every delivery crosses nodes: send→receive latency;
//! - `cluster-fanout`: members and senders spread over all nodes, sending as fast as they
//!   can: the delivery rate at saturation, and nothing lost;
//! - `cluster-send`: persisted sends spread over all nodes, as `send` measures one node.
//!
//! With `--apart`, only the send phase (`apart-send`), on nodes that share nothing but the
//! PostgreSQL server: what that many processes reach on this machine without coordinating.

use super::fanout::fanout_phase;
use super::throughput::{send_phase, send_plan};
use super::*;

pub struct ClusterLoad {
    pub members: usize,
    pub senders: usize,
    pub light_rate: f64,
    pub send_senders: usize,
    pub chat_threads: usize,
}

pub fn cluster(ctx: &Ctx, nodes: &[String], load: &ClusterLoad) -> Result<(), String> {
    if nodes.len() < 2 {
        return Err("cluster needs at least 2 nodes".into());
    }
    let light = fanout_phase(
        ctx,
        &nodes[..1],
        &nodes[1..],
        load.members,
        2,
        load.light_rate,
    )?;
    light.print("cluster-light", load.light_rate);
    let full = fanout_phase(ctx, nodes, nodes, load.members, load.senders, 0.0)?;
    full.print("cluster-fanout", 0.0);
    let plan = send_plan(ctx, load.send_senders, load.chat_threads)?;
    let (s, secs) = send_phase(ctx, nodes, plan);
    line(
        "cluster-send",
        &s,
        secs,
        "msg",
        &format!(
            "  ({} nodes, {} senders, {} threads)",
            nodes.len(),
            load.send_senders,
            load.chat_threads
        ),
    );
    Ok(())
}

/// `--apart`: the schema `apart<i>` of `database_url`, made afresh, and the URL that puts a
/// node on it.
pub fn apart_schema(database_url: &str, i: usize) -> Result<String, String> {
    use diesel::{Connection, RunQueryDsl};
    let mut c = diesel::pg::PgConnection::establish(database_url)
        .map_err(|e| format!("{database_url}: {e}"))?;
    let schema = format!("apart{i}");
    for sql in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        diesel::sql_query(sql)
            .execute(&mut c)
            .map_err(|e| format!("{database_url}: {e}"))?;
    }
    let join = if database_url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{database_url}{join}options=-csearch_path%3D{schema}"
    ))
}

/// `--apart`: the send phase of [`cluster`] on nodes that share nothing: sender `j` sends
/// through node `j % nodes` (as there), its identity and threads made on that node.
pub fn apart(ctx: &Ctx, nodes: &[String], load: &ClusterLoad) -> Result<(), String> {
    let n = nodes.len();
    // how many of 0..total fall to node i (j % n == i)
    let share_of = |total: usize, i: usize| total / n + usize::from(i < total % n);
    let mut plans = Vec::with_capacity(n);
    for (i, base) in nodes.iter().enumerate() {
        let mut on = Ctx {
            target: ctx.target.clone(),
            ..*ctx
        };
        on.target.base = base.clone();
        let plan = send_plan(
            &on,
            share_of(load.send_senders, i),
            share_of(load.chat_threads, i),
        )?;
        plans.push(plan.into_iter());
    }
    let plan = (0..load.send_senders)
        .map(|j| plans[j % n].next().ok_or("a node's plan ran short"))
        .collect::<Result<Vec<_>, _>>()?;
    let (s, secs) = send_phase(ctx, nodes, plan);
    line(
        "apart-send",
        &s,
        secs,
        "msg",
        &format!(
            "  ({n} nodes sharing nothing but PostgreSQL, {} senders, {} threads)",
            load.send_senders, load.chat_threads
        ),
    );
    Ok(())
}
