//! W3C trace context (`traceparent`), so that one trace id follows an order
//! from the HTTP request through every queue hop to the last consumer.

use rand::Rng;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
    pub sampled: bool,
}

impl TraceContext {
    /// A fresh root context.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        Self { trace_id: hex::encode(rng.random::<[u8; 16]>()), span_id: new_span_id(), sampled: true }
    }

    /// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, or the same
    /// first four fields of a later version (which may add more); anything
    /// else, including version `ff` and the all-zero ids the spec forbids,
    /// is `None`.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let lower_hex =
            |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let non_zero = |s: &str| s.bytes().any(|b| b != b'0');
        // W3C Trace Context §4.3: version ff is invalid; a later version is
        // read for these four fields, and only it may carry more of them.
        let later = lower_hex(version, 2) && version != "00";
        if !lower_hex(version, 2)
            || version == "ff"
            || (!later && parts.next().is_some())
            || !lower_hex(trace_id, 32)
            || !lower_hex(span_id, 16)
            || !lower_hex(flags, 2)
        {
            return None;
        }
        if !non_zero(trace_id) || !non_zero(span_id) {
            return None;
        }
        let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
        Some(Self { trace_id: trace_id.to_owned(), span_id: span_id.to_owned(), sampled })
    }

    /// The same trace, a new span: what a hop (request -> event -> consumer) does.
    pub fn child(&self) -> Self {
        Self { trace_id: self.trace_id.clone(), span_id: new_span_id(), sampled: self.sampled }
    }

    pub fn to_header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, if self.sampled { "01" } else { "00" })
    }
}

/// Makes `span` the continuation of `parent` (the `traceparent` a request or
/// an event arrived with; none starts a new trace) and returns the context to
/// hand on to whatever this span causes.
///
/// With the `otel` feature and an OpenTelemetry layer installed, the span
/// becomes a child of `parent` in the exported trace and the returned context
/// carries its real span id; otherwise a fresh span id in the same trace.
pub fn continue_trace(span: &tracing::Span, parent: Option<&TraceContext>) -> TraceContext {
    #[cfg(feature = "otel")]
    if let Some(exported) = otel::link(span, parent) {
        return exported;
    }
    let _ = span;
    parent.map(TraceContext::child).unwrap_or_else(TraceContext::new_root)
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceContext;

    pub fn link(span: &tracing::Span, parent: Option<&TraceContext>) -> Option<TraceContext> {
        if let Some(parent) = parent {
            let remote = SpanContext::new(
                TraceId::from_hex(&parent.trace_id).ok()?,
                SpanId::from_hex(&parent.span_id).ok()?,
                if parent.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() },
                true,
                TraceState::default(),
            );
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        }
        // Without an OpenTelemetry layer the span has no valid context.
        let context = span.context();
        let own = context.span().span_context().clone();
        own.is_valid().then(|| TraceContext {
            trace_id: own.trace_id().to_string(),
            span_id: own.span_id().to_string(),
            sampled: own.is_sampled(),
        })
    }
}

fn new_span_id() -> String {
    let mut id = [0u8; 8];
    while id == [0; 8] {
        id = rand::rng().random();
    }
    hex::encode(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_children_keep_the_trace_id() {
        let root = TraceContext::new_root();
        assert_eq!(TraceContext::parse(&root.to_header()), Some(root.clone()));
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
    }

    #[test]
    fn rejects_malformed_headers_and_reads_the_fields_of_a_later_version() {
        for bad in [
            "",
            "00-abc-def-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        assert!(TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some());
        for later in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next",
        ] {
            let read = TraceContext::parse(later).expect(later);
            assert_eq!((read.trace_id.as_str(), read.sampled), ("4bf92f3577b34da6a3ce929d0e0e4736", true));
        }
    }
}
