//! Prometheus metrics for `/metrics`. Labels are bounded sets (municipality, model,
//! reject reason, event kind, a gateway's state); never an alarm, resident,
//! staff or gateway id. A municipality label is a configured one or [`UNKNOWN`]: what
//! comes from a topic before it is checked would otherwise make a series per made-up
//! name, for ever (2,000 made-up topics grew `/metrics` from 5 to 205 kB).

use prometheus::{Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::core::{Action, ResponseModel};

/// The municipality label of what names a municipality that is not configured.
pub const UNKNOWN: &str = "unknown";

pub struct Metrics {
    pub registry: Registry,
    pub alarms_received: IntCounterVec,
    pub alarms_clock_ahead: IntCounterVec,
    pub rejected: IntCounterVec,
    pub answer_time: HistogramVec,
    pub answered: IntCounterVec,
    pub answered_within_target: IntCounterVec,
    pub escalations: IntCounterVec,
    pub backup_forwards: IntCounterVec,
    pub alerts: IntCounterVec,
    pub events: IntCounterVec,
    pub open_incidents: IntGauge,
    pub staff_on_duty: IntGauge,
    pub incidents_set_aside: IntGauge,
    pub directory_rows_set_aside: IntGauge,
    pub gateways: IntGaugeVec,
    pub mqtt_connected: IntGauge,
    pub mqtt_disconnects: IntCounter,
    pub store_write_seconds: Histogram,
    pub store_write_failures: IntCounter,
    pub outbox_pending: IntGauge,
    pub events_unacknowledged: IntGauge,
    pub replayed_records: IntCounter,
    pub embedded_broker_overruns: IntCounterVec,
    pub device_messages: IntCounterVec,
    pub devices_silent: IntGauge,
    pub devices_registered: IntGauge,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new_custom(Some("vakt".into()), None).expect("registry");
        let answer_time = HistogramVec::new(
            HistogramOpts::new("answer_time_seconds", "Time from an alarm's arrival until a human answered it")
                .buckets(vec![5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0]),
            &["municipality", "model"],
        )
        .expect("valid metric");
        r.register(Box::new(answer_time.clone())).expect("unique metric");
        let store_write_seconds = Histogram::with_opts(
            HistogramOpts::new("store_write_seconds", "Time to store one batch (input log, events, outbox) in one transaction")
                .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0]),
        )
        .expect("valid metric");
        r.register(Box::new(store_write_seconds.clone())).expect("unique metric");
        let embedded_broker_overruns = counter_vec(
            &r,
            "embedded_broker_overruns_total",
            "Times the embedded broker dropped messages a subscriber had not read, too far behind for its log (subscriber=engine: alarms, statuses or replies vakt never got)",
            &["subscriber"],
        );
        for who in ["engine", "other"] {
            // Both series from the start, for an alert on their increase.
            embedded_broker_overruns.with_label_values(&[who]);
        }
        Metrics {
            alarms_received: counter_vec(
                &r,
                "alarms_received_total",
                "Alarms accepted by the wire parser, and base units' connection_lost alarms raised by vakt, by the municipality of the topic (unknown: one not configured)",
                &["municipality"],
            ),
            alarms_clock_ahead: counter_vec(
                &r,
                "alarms_clock_ahead_total",
                "Alarms taken although their device's clock ran more than max_future_secs ahead of vakt's (the device's clock needs setting)",
                &["municipality"],
            ),
            rejected: counter_vec(&r, "messages_rejected_total", "Messages refused, by reason code (docs/mqtt.md)", &["reason"]),
            answered: counter_vec(&r, "answered_total", "Incidents answered by a human", &["municipality", "model"]),
            answered_within_target: counter_vec(&r, "answered_within_target_total", "Incidents answered within the target (60 s)", &["municipality", "model"]),
            escalations: counter_vec(&r, "escalations_total", "Staff ladders widened to everyone on duty", &["municipality", "model"]),
            backup_forwards: counter_vec(&r, "backup_forwards_total", "Incidents forwarded to a backup centre or team", &["municipality", "model"]),
            alerts: counter_vec(&r, "alerts_total", "Unanswered or not-accepted alerts raised", &["municipality", "model"]),
            events: counter_vec(&r, "incident_events_total", "Incident events stored, by type", &["type"]),
            open_incidents: gauge(&r, "open_incidents", "Incidents not yet closed"),
            staff_on_duty: gauge(&r, "staff_on_duty", "Home-care staff logged in"),
            incidents_set_aside: gauge(
                &r,
                "incidents_set_aside",
                "Open incidents the engine no longer handles by itself (a fault in vakt met them): people must",
            ),
            directory_rows_set_aside: gauge(
                &r,
                "directory_rows_set_aside",
                "Residents and staff whose directory row made the engine panic (a fault in vakt): left out until the row changes",
            ),
            gateways: gauge_vec(
                &r,
                "gateways",
                "Gateways by their latest status on vakt/v1/gateways (online, or offline: its alarms cannot reach vakt), by municipality",
                &["municipality", "state"],
            ),
            mqtt_connected: gauge(&r, "mqtt_connected", "1 while connected to the MQTT broker and subscribed to what vakt takes in"),
            mqtt_disconnects: counter(&r, "mqtt_connection_errors_total", "MQTT connection losses and failed connection attempts"),
            store_write_failures: counter(&r, "store_write_failures_total", "Failed store writes (retried until they succeed)"),
            outbox_pending: gauge(&r, "outbox_pending", "Outbox messages (offers, revokes, answers, rejects) the broker has not acknowledged"),
            events_unacknowledged: gauge(
                &r,
                "incident_events_unacknowledged",
                "Incident events not yet acknowledged by the broker (published from the events table)",
            ),
            replayed_records: counter(&r, "replayed_records_total", "Input log records replayed at start"),
            device_messages: counter_vec(
                &r,
                "device_messages_total",
                "Messages from alarm devices, by protocol (dc09, scaip) and outcome (stored, refused by reason code, unanswered: not stored in time)",
                &["protocol", "outcome"],
            ),
            devices_registered: gauge(&r, "devices_registered", "Alarm devices in the register the receivers read (vakt import devices)"),
            devices_silent: gauge(
                &r,
                "devices_silent",
                "Supervised devices not heard within their heartbeat interval and grace (each raised heartbeat_missed)",
            ),
            embedded_broker_overruns,
            answer_time,
            store_write_seconds,
            registry: r,
        }
    }

    /// Counts one live action (not replayed ones: counters cover this process's life).
    pub fn observe(&self, action: &Action, municipality: &str, model: ResponseModel, target: std::time::Duration) {
        let labels = [municipality, model.as_str()];
        self.events.with_label_values(&[super::outbound::event_kind(action)]).inc();
        match action {
            Action::Answered { answer_time, .. } => {
                self.answer_time.with_label_values(&labels).observe(answer_time.as_secs_f64());
                self.answered.with_label_values(&labels).inc();
                if *answer_time <= target {
                    self.answered_within_target.with_label_values(&labels).inc();
                }
            }
            Action::Broadcast { .. } => self.escalations.with_label_values(&labels).inc(),
            Action::ForwardedToBackup { .. } => self.backup_forwards.with_label_values(&labels).inc(),
            Action::Alert { .. } => self.alerts.with_label_values(&labels).inc(),
            _ => {}
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
