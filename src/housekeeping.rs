//! Background tasks of a running server: metrics upkeep and dashboard sampling, WAL
//! checkpoints, the retention sweeper, and the purge of expired idempotency records and old
//! webhook deliveries.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::dashboard::sampler::{self, Sampler};
use crate::state::AppState;
use crate::{error, events, ids, model, store};

/// How often expired idempotency records are purged.
const IDEMPOTENCY_PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Threads deleted per retention sweep.
const RETENTION_BATCH: i64 = 500;

/// How often committed WAL frames are copied into the SQLite database file.
const WAL_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// How often histogram upkeep runs and gauges are sampled.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How often a PostgreSQL node checks that it still holds its database (and takes the lock
/// again after a lost connection).
#[cfg(feature = "postgres")]
const DATABASE_LOCK_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The retention sweeper, the idempotency purge, metrics upkeep and the real-time stream sweep.
pub fn spawn(state: web::Data<AppState>, samples: Arc<Sampler>) {
    let upkeep = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(METRICS_UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            // exporter default features are off: nothing else runs upkeep
            upkeep.prometheus.run_upkeep();
            upkeep.store.record_pool_gauge();
            upkeep.users.sweep();
        }
    });
    let sampler = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(sampler.config.dashboard_sample_interval.0);
        loop {
            tick.tick().await;
            sampler.activity.prune_senders();
            let text = sampler.prometheus.render();
            samples.record(sampler::parse(&text, ids::now_ms()));
        }
    });
    #[cfg(feature = "postgres")]
    if state.store.backend() == crate::store::Backend::Postgres {
        let keeper = state.clone();
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(DATABASE_LOCK_CHECK_INTERVAL);
            loop {
                tick.tick().await;
                keeper.store.keep_hold().await;
            }
        });
    }
    let checkpointer = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(WAL_CHECKPOINT_INTERVAL);
        loop {
            tick.tick().await;
            if let Err(e) = checkpointer.store.checkpoint().await {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    });
    let sweeper = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(sweeper.config.retention_sweep_interval.0);
        loop {
            tick.tick().await;
            if let Err(e) = sweep_retention(&sweeper).await {
                tracing::warn!(error = %e, "retention sweep failed");
            }
        }
    });
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(IDEMPOTENCY_PURGE_INTERVAL);
        loop {
            tick.tick().await;
            let now = ids::now_ms();
            let before = now - state.config.idempotency_window.0.as_millis() as i64;
            let delivered_before = now - events::dispatcher::DELIVERED_KEPT.as_millis() as i64;
            let purge = state
                .store
                .write(move |c| {
                    store::messages::idempotency_expire(c, before)?;
                    store::webhooks::purge_delivered(c, delivered_before)?;
                    Ok(())
                })
                .await;
            if let Err(e) = purge {
                tracing::warn!(error = %e, "idempotency purge failed");
            }
        }
    });
}

/// Deletes every thread whose retention time has passed, exactly as DELETE does, acting as
/// the system identity.
async fn sweep_retention(state: &AppState) -> Result<(), error::ApiError> {
    let now = ids::now_ms();
    let due = state
        .store
        .read(move |c| Ok(store::threads::due_for_retention(c, now, RETENTION_BATCH)?))
        .await?;
    for thread in due {
        let cmd = crate::hub::commands::DeleteThread {
            user: ids::UserId::new(model::SYSTEM_ACTOR),
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        match state.hub.send(&thread, cmd).await {
            Ok(()) => tracing::info!(%thread, "thread deleted by its retention policy"),
            Err(e) if e.status == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
