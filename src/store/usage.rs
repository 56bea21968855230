//! What the dashboard's Usage page reads: per hour, the text/html messages sent, threads created
//! and identities created. Triggers (migration `000006_usage`) keep the counts in the
//! transaction of each insert, so they are exactly what was committed, survive restarts and
//! later deletions, and a month of them is a few hundred rows.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::schema::usage_hours;
use super::DbConn;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// What was created in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub messages: i64,
    pub threads: i64,
    pub identities: i64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.messages += o.messages;
        self.threads += o.threads;
        self.identities += o.identities;
    }
}

/// The start (epoch ms, UTC) of the hour holding `ms`.
pub fn hour_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

/// The start (epoch ms, UTC) of the day holding `ms`.
pub fn day_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

/// Every hour from `from` on that saw something, by its start (PostgreSQL keeps a row per
/// connection and hour: they are summed here).
pub fn hours_since(c: &mut DbConn, from: i64) -> QueryResult<BTreeMap<i64, Counts>> {
    let rows: Vec<(i64, i64, i64, i64)> = usage_hours::table
        .filter(usage_hours::hour.ge(hour_of(from)))
        .select((
            usage_hours::hour,
            usage_hours::messages,
            usage_hours::threads,
            usage_hours::identities,
        ))
        .load(c)?;
    let mut out: BTreeMap<i64, Counts> = BTreeMap::new();
    for (hour, messages, threads, identities) in rows {
        *out.entry(hour).or_default() += Counts {
            messages,
            threads,
            identities,
        };
    }
    Ok(out)
}

/// The last `n` periods of `len` ms up to the one holding `now` (newest first), each with its
/// start and what the hours in it counted.
pub fn periods(hours: &BTreeMap<i64, Counts>, now: i64, len: i64, n: usize) -> Vec<(i64, Counts)> {
    let last = now - now.rem_euclid(len);
    (0..n as i64)
        .map(|i| {
            let start = last - i * len;
            let mut sum = Counts::default();
            for (_, c) in hours.range(start..start + len) {
                sum += *c;
            }
            (start, sum)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_fold_into_days_and_empty_periods_are_zero() {
        let day = 20_000 * DAY_MS;
        let mut hours = BTreeMap::new();
        hours.insert(
            day + HOUR_MS,
            Counts {
                messages: 3,
                threads: 1,
                identities: 2,
            },
        );
        hours.insert(
            day + 5 * HOUR_MS,
            Counts {
                messages: 4,
                ..Default::default()
            },
        );
        hours.insert(
            day - HOUR_MS,
            Counts {
                messages: 10,
                ..Default::default()
            },
        );
        let now = day + 5 * HOUR_MS + 17;
        let days = periods(&hours, now, DAY_MS, 3);
        assert_eq!(days[0].0, day);
        assert_eq!(days[0].1.messages, 7);
        assert_eq!(days[0].1.identities, 2);
        assert_eq!(days[1].1.messages, 10);
        assert_eq!(days[2].1, Counts::default());
        let hrs = periods(&hours, now, HOUR_MS, 48);
        assert_eq!(hrs.len(), 48);
        assert_eq!(hrs[0], (day + 5 * HOUR_MS, hours[&(day + 5 * HOUR_MS)]));
        assert_eq!(hrs[4].1.messages, 3);
        assert_eq!(hrs[6].1.messages, 10);
        assert_eq!(hour_of(-1), -HOUR_MS);
    }
}
