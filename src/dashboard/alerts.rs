//! The alert rules of `deploy/prometheus/alerts.yml`, evaluated in-process over the dashboard's
//! samples, and the Alerts page that shows them.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use askama::Template;

use super::charts::fmt;
use super::sampler::{quantile, Sample};
use super::{render, DashboardState, SignedIn};

/// The sample closest to `ms` ago (or the oldest).
pub fn ago(samples: &[Arc<Sample>], ms: i64) -> Option<&Arc<Sample>> {
    let now = samples.last()?.at;
    samples
        .iter()
        .find(|s| now - s.at <= ms)
        .or(samples.first())
}

/// One alert condition, evaluated from the same registry as the Prometheus rules.
pub struct AlertState {
    pub name: &'static str,
    pub firing: bool,
    pub value: String,
    pub condition: &'static str,
    /// The span of data the rule needs before it is judged.
    pub window_ms: i64,
}

fn ratio(new: &Sample, old: &Sample) -> f64 {
    let dreq = new.requests - old.requests;
    if dreq > 0.0 {
        (new.errors_5xx - old.errors_5xx) / dreq
    } else {
        0.0
    }
}

/// The alert rules of deploy/prometheus/alerts.yml, evaluated in-process over the samples.
/// A rule is judged only once the samples cover its window, as Prometheus would (a rate over
/// 5 minutes needs 5 minutes of data); until then it shows how much data there is.
pub fn alerts(samples: &[Arc<Sample>]) -> Vec<AlertState> {
    let span = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b.at - a.at,
        _ => 0,
    };
    evaluate(samples)
        .into_iter()
        .map(|mut a| {
            if span < a.window_ms {
                a.firing = false;
                a.value = format!(
                    "collecting data ({} of {} min)",
                    span / 60_000,
                    a.window_ms / 60_000
                );
            }
            a
        })
        .collect()
}

/// Each rule's raw state over whatever the samples cover.
fn evaluate(samples: &[Arc<Sample>]) -> Vec<AlertState> {
    let Some(now) = samples.last() else {
        return vec![];
    };
    let m5 = ago(samples, 5 * 60_000).unwrap_or(now);
    let m10 = ago(samples, 10 * 60_000).unwrap_or(now);
    let h1 = ago(samples, 60 * 60_000).unwrap_or(now);
    let secs5 = ((now.at - m5.at) as f64 / 1000.0).max(1.0);
    let p99 = quantile(0.99, &now.buckets, Some(&m5.buckets)).unwrap_or(0.0);
    let r5 = ratio(now, m5);
    let r1h = ratio(now, h1);
    let slow = now.slow_consumers - m10.slow_consumers;
    let auth = (now.auth_failures - m5.auth_failures) / secs5;
    // `for: 10m`: the condition held at every sample of the last 10 minutes
    let backlog = |s: &Sample| s.webhook_oldest > 900.0 || s.webhook_queue > 10_000.0;
    let backlog_held = samples
        .iter()
        .filter(|s| s.at >= now.at - 10 * 60_000)
        .all(|s| backlog(s));
    vec![
        AlertState {
            name: "ConfabHighErrorRatio",
            firing: r5 > 0.05,
            value: fmt(r5, "%"),
            condition: "5xx ratio over 5 min > 5%",
            window_ms: 5 * 60_000,
        },
        AlertState {
            name: "ConfabHighLatencyP99",
            firing: p99 > 0.5,
            value: fmt(p99, "s"),
            condition: "p99 latency over 5 min > 500 ms",
            window_ms: 5 * 60_000,
        },
        AlertState {
            name: "ConfabErrorBudgetBurn",
            firing: r5 > 14.4 * 0.001 && r1h > 14.4 * 0.001,
            value: format!("{} (1 h), {} (5 min)", fmt(r1h, "%"), fmt(r5, "%")),
            condition: "5xx ratio > 1.44% over both 1 h and 5 min (99.9% SLO)",
            window_ms: 60 * 60_000,
        },
        AlertState {
            name: "ConfabSlowConsumerSpike",
            firing: slow > 20.0,
            value: format!("{slow:.0}"),
            condition: "more than 20 sessions closed with 4008 in 10 min",
            window_ms: 10 * 60_000,
        },
        AlertState {
            name: "ConfabAuthFailureSpike",
            firing: auth > 5.0,
            value: format!("{auth:.2}/s"),
            condition: "more than 5 refused credentials per second over 5 min",
            window_ms: 5 * 60_000,
        },
        AlertState {
            name: "WebhookDeliveryBacklog",
            firing: backlog_held,
            value: format!(
                "oldest {}, {:.0} waiting",
                fmt(now.webhook_oldest, "s"),
                now.webhook_queue
            ),
            condition: "oldest waiting webhook delivery > 15 min, or > 10000 waiting, for 10 min",
            window_ms: 10 * 60_000,
        },
    ]
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    csrf: String,
    page: &'static str,
    alerts: Vec<AlertState>,
    points: usize,
}

/// GET /alerts — the alert conditions, evaluated in-process.
pub async fn alerts_page(SignedIn(s): SignedIn, app: web::Data<DashboardState>) -> HttpResponse {
    let samples = app.sampler.all();
    render(AlertsPage {
        csrf: s.csrf,
        page: "alerts",
        alerts: alerts(&samples),
        points: samples.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples every 30 s for `minutes`, adding `req` requests, `err` 5xx and `auth` refused
    /// credentials per sample.
    fn samples(minutes: i64, req: f64, err: f64, auth: f64) -> Vec<Arc<Sample>> {
        (0..=minutes * 2)
            .map(|i| {
                let n = i as f64;
                Arc::new(Sample {
                    at: i * 30_000,
                    requests: n * req,
                    errors_5xx: n * err,
                    auth_failures: n * auth,
                    ..Default::default()
                })
            })
            .collect()
    }

    fn firing(a: &[AlertState]) -> Vec<&'static str> {
        a.iter().filter(|a| a.firing).map(|a| a.name).collect()
    }

    #[test]
    fn error_ratio_fires_once_the_window_is_covered() {
        assert_eq!(
            firing(&alerts(&samples(10, 100.0, 10.0, 0.0))),
            vec!["ConfabHighErrorRatio"]
        );
        assert!(
            firing(&alerts(&samples(10, 100.0, 1.0, 0.0))).is_empty(),
            "1% is fine"
        );
        let early = alerts(&samples(2, 100.0, 10.0, 0.0));
        assert!(
            firing(&early).is_empty(),
            "two minutes of data do not judge a 5-minute rule"
        );
        assert!(early[0].value.starts_with("collecting data"));
    }

    #[test]
    fn auth_spike_and_budget_burn() {
        // 300 refused credentials per 30 s = 10/s
        assert_eq!(
            firing(&alerts(&samples(6, 100.0, 0.0, 300.0))),
            vec!["ConfabAuthFailureSpike"]
        );
        // 2% 5xx for an hour: below the 5% page, above the 1.44% budget burn
        assert_eq!(
            firing(&alerts(&samples(61, 1000.0, 20.0, 0.0))),
            vec!["ConfabErrorBudgetBurn"]
        );
    }

    #[test]
    fn webhook_backlog_needs_ten_minutes_above_the_line() {
        // one delivery stuck from t=0: its age grows with time
        let stuck = |minutes: i64| -> Vec<Arc<Sample>> {
            (0..=minutes * 2)
                .map(|i| {
                    Arc::new(Sample {
                        at: i * 30_000,
                        webhook_oldest: (i * 30) as f64,
                        webhook_queue: 1.0,
                        ..Default::default()
                    })
                })
                .collect()
        };
        assert!(
            firing(&alerts(&stuck(20))).is_empty(),
            "over 15 min for 5 min only"
        );
        assert_eq!(firing(&alerts(&stuck(26))), vec!["WebhookDeliveryBacklog"]);
    }
}
