//! `cluster`: several nodes on one PostgreSQL and one NATS (contract §9). Three phases:
//! - `cluster-light`: members connected to every node but the first, sends through the first
//!   at a light rate, so every delivery crosses nodes: send→receive latency;
//! - `cluster-fanout`: members and senders spread over all nodes, sending as fast as they
//!   can: the delivery rate at saturation, and nothing lost;
//! - `cluster-send`: persisted sends spread over all nodes, as `send` measures one node.

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
