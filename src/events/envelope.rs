//! The body and content type of a delivery in its subscription's schema (contract §7.3):
//! an Event Grid array of one event, or a CloudEvents 1.0 structured event.

use serde_json::{json, Value};

use crate::ids::fmt_ms;

pub const CLOUD_EVENTS: &str = "CloudEventSchemaV1_0";

/// The body and content type of one delivery in a subscription's schema (contract §7.3).
pub fn envelope(
    schema: &str,
    topic: &str,
    id: &str,
    event_type: &str,
    subject: &str,
    time: i64,
    data: Value,
) -> (&'static str, String) {
    if schema == CLOUD_EVENTS {
        let e = json!({
            "specversion": "1.0",
            "id": id,
            "source": topic,
            "subject": subject,
            "type": event_type,
            "time": fmt_ms(time),
            "datacontenttype": "application/json",
            "data": data,
        });
        ("application/cloudevents+json; charset=utf-8", e.to_string())
    } else {
        let e = json!([{
            "id": id,
            "topic": topic,
            "subject": subject,
            "eventType": event_type,
            "eventTime": fmt_ms(time),
            "dataVersion": "1.0",
            "metadataVersion": "1",
            "data": data,
        }]);
        ("application/json; charset=utf-8", e.to_string())
    }
}
