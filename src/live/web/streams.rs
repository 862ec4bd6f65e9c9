//! Server-sent events: the dashboard's incident changes and refused alarms, and a staff
//! member's offers, as the MQTT contract publishes them.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::broadcast;

use super::api::DASHBOARD;
use super::staff::my_staff_id;
use super::{ApiError, AppState, Authed, LiveMessage};
use crate::live::accounts;
use crate::live::outbound;

/// Server-sent events from the live channel, filtered; `lagged` tells the page to reload
/// its state (it fell more than the channel's capacity behind).
pub(super) fn live_events(
    rx: broadcast::Receiver<LiveMessage>,
    keep: impl Fn(&str, &str) -> Option<&'static str> + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((rx, keep), |(mut rx, keep)| async move {
        loop {
            match rx.recv().await {
                Ok(m) => {
                    if let Some(name) = keep(&m.0, &m.1) {
                        return Some((Ok(Event::default().event(name).data(m.1.clone())), (rx, keep)));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => return Some((Ok(Event::default().event("lagged").data(n.to_string())), (rx, keep))),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Every incident change in the user's scope, as on `vakt/v1/incidents/{m}` (event
/// `incident`), and every alarm refused in it, as on `vakt/v1/rejects` (event `refused`).
pub(super) async fn stream(State(s): State<AppState>, a: Authed) -> Result<impl IntoResponse, ApiError> {
    a.require(DASHBOARD)?;
    let topics: Vec<String> = accounts::visible_municipalities(&s.config, &a.user).map(|m| outbound::incidents_topic(&m.id)).collect();
    let (config, user) = (s.config.clone(), a.user.clone());
    Ok(live_events(s.live.subscribe(), move |t, payload| {
        if topics.iter().any(|x| x == t) {
            return Some("incident");
        }
        let refused_alarm = t == outbound::REJECTS_TOPIC
            && serde_json::from_str::<Value>(payload)
                .ok()
                .is_some_and(|m| outbound::listed_municipality(&m).is_some_and(|m| accounts::sees_refused(&config, &user, m)));
        refused_alarm.then_some("refused")
    }))
}

/// Offers, revokes, confirmations and refusals for the signed-in staff member, as on
/// `vakt/v1/staff/{id}/offers`.
pub(super) async fn staff_stream(State(s): State<AppState>, a: Authed) -> Result<impl IntoResponse, ApiError> {
    let topic = outbound::offers_topic(&my_staff_id(&a)?);
    Ok(live_events(s.live.subscribe(), move |t, _| (t == topic).then_some("offer")))
}
