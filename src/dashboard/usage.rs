//! The Usage page: messages sent, threads and identities created per day for the last 30 days
//! and per hour for the last 48 hours, read from the database (the `usage_hours` counts kept
//! by triggers), so that it survives restarts; and the same table as CSV.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{TimeZone, Utc};

use super::charts::bar_chart;
use super::{render, DashboardState, SignedIn};
use crate::ids::now_ms;
use crate::store::usage::{self, Counts, DAY_MS, HOUR_MS};

/// Days and hours the page shows.
const DAYS: usize = 30;
const HOURS: usize = 48;

/// One period of the table.
struct Row {
    /// `2026-12-05` or `2026-12-05 08:00`.
    period: String,
    /// The period's start, RFC 3339 (the CSV's machine-readable column).
    start: String,
    counts: Counts,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    csrf: String,
    page: &'static str,
    days: Vec<Row>,
    hours: Vec<Row>,
    total: Counts,
    chart: String,
}

fn utc(ms: i64, format: &str) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .format(format)
        .to_string()
}

/// The last 30 days and 48 hours, newest first.
async fn tables(app: &DashboardState) -> Result<(Vec<Row>, Vec<Row>), crate::error::ApiError> {
    let now = now_ms();
    let from = (usage::day_of(now) - (DAYS as i64 - 1) * DAY_MS)
        .min(usage::hour_of(now) - (HOURS as i64 - 1) * HOUR_MS);
    let hours = app
        .store
        .read(move |c| Ok(usage::hours_since(c, from)?))
        .await?;
    let rows = |len, n, format: &str| -> Vec<Row> {
        usage::periods(&hours, now, len, n)
            .into_iter()
            .map(|(start, counts)| Row {
                period: utc(start, format),
                start: crate::ids::fmt_ms(start),
                counts,
            })
            .collect()
    };
    Ok((
        rows(DAY_MS, DAYS, "%Y-%m-%d"),
        rows(HOUR_MS, HOURS, "%Y-%m-%d %H:00"),
    ))
}

/// GET /usage
pub async fn usage_page(SignedIn(s): SignedIn, app: web::Data<DashboardState>) -> HttpResponse {
    let (days, hours) = match tables(&app).await {
        Ok(t) => t,
        Err(e) => return unavailable(e),
    };
    let mut total = Counts::default();
    for d in &days {
        total += d.counts;
    }
    let bars: Vec<(String, f64)> = days
        .iter()
        .rev()
        .map(|d| (d.period[5..].to_string(), d.counts.messages as f64))
        .collect();
    render(UsagePage {
        csrf: s.csrf,
        page: "usage",
        chart: bar_chart(&bars, ""),
        days,
        hours,
        total,
    })
}

/// GET /usage.csv — the page's two tables in one: `granularity,period_start,messages_sent,
/// threads_created,identities_created`, days then hours, newest first.
pub async fn usage_csv(_: SignedIn, app: web::Data<DashboardState>) -> HttpResponse {
    let (days, hours) = match tables(&app).await {
        Ok(t) => t,
        Err(e) => return unavailable(e),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"confab-usage-{}.csv\"",
                utc(now_ms(), "%Y-%m-%d")
            ),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(csv(&days, &hours))
}

fn csv(days: &[Row], hours: &[Row]) -> String {
    let mut out =
        String::from("granularity,period_start,messages_sent,threads_created,identities_created\n");
    for (granularity, rows) in [("day", days), ("hour", hours)] {
        for r in rows {
            out.push_str(&format!(
                "{granularity},{},{},{},{}\n",
                r.start, r.counts.messages, r.counts.threads, r.counts.identities
            ));
        }
    }
    out
}

/// The database could not be read: say so (the page is retried by a reload, not by a client).
fn unavailable(e: crate::error::ApiError) -> HttpResponse {
    tracing::warn!(error = %e.message, "usage page: database read failed");
    HttpResponse::ServiceUnavailable()
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .body(format!("The database could not be read: {}", e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_has_a_header_and_a_line_per_period() {
        let row = |start: i64, messages| Row {
            period: String::new(),
            start: crate::ids::fmt_ms(start),
            counts: Counts {
                messages,
                threads: 1,
                identities: 2,
            },
        };
        let text = csv(&[row(0, 5)], &[row(HOUR_MS, 3), row(0, 2)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "granularity,period_start,messages_sent,threads_created,identities_created",
                "day,1970-01-01T00:00:00.000Z,5,1,2",
                "hour,1970-01-01T01:00:00.000Z,3,1,2",
                "hour,1970-01-01T00:00:00.000Z,2,1,2",
            ]
        );
    }
}
