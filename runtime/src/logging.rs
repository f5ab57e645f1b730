//! Logs in the line formats container engines parse.
//!
//! containerd keeps the last `error` line of `--log`; podman json-decodes its
//! `oci-log` file as one object when a call fails. Both expect runc's shapes:
//! JSON `{"level":"error","msg":"...","time":"RFC3339"}` or logrus text
//! `time="..." level=error msg="..."`. By default only Purple's own warnings and
//! the final error reach the log, so a failed call leaves exactly one error line.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

enum Sink {
    Stderr,
    File(Mutex<File>),
}

/// Writes runc-shaped log lines to a file or stderr.
pub struct Logger {
    sink: Sink,
    format: LogFormat,
}

impl Logger {
    /// Opens `path` for appending (stderr when `None`).
    pub fn open(path: Option<&Path>, format: LogFormat) -> std::io::Result<Self> {
        let sink = match path {
            Some(p) => Sink::File(Mutex::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            )),
            None => Sink::Stderr,
        };
        Ok(Self { sink, format })
    }

    /// Whether lines already go to stderr (then the binary need not echo errors).
    pub fn is_stderr(&self) -> bool {
        matches!(self.sink, Sink::Stderr)
    }

    /// Formats one record.
    pub fn line(&self, level: Level, msg: &str) -> String {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let level = level.as_str().to_ascii_lowercase();
        match self.format {
            LogFormat::Json => {
                let rec = serde_json::json!({ "level": level, "msg": msg, "time": time });
                format!("{rec}\n")
            }
            LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
        }
    }

    /// Writes one record; logging never fails the command it describes.
    pub fn write(&self, level: Level, msg: &str) {
        let line = self.line(level, msg);
        let _ = match &self.sink {
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Sink::File(f) => match f.lock() {
                Ok(mut f) => f.write_all(line.as_bytes()),
                Err(_) => Ok(()),
            },
        };
    }
}

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let sep = if self.0.is_empty() { "" } else { " " };
            let _ = write!(self.0, "{sep}{}={value:?}", field.name());
        }
    }
}

struct LogLayer(std::sync::Arc<Logger>);

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = MessageVisitor(String::new());
        event.record(&mut v);
        self.0.write(*event.metadata().level(), &v.0);
    }
}

/// Installs the global subscriber; returns the logger for the final error line.
///
/// `debug` lets every crate (libcontainer included) log at debug level; otherwise
/// only Purple's warnings pass, so that a failure is one line.
pub fn init(
    path: Option<&Path>,
    format: LogFormat,
    debug: bool,
) -> std::io::Result<std::sync::Arc<Logger>> {
    let logger = std::sync::Arc::new(Logger::open(path, format)?);
    let filter = if debug {
        Targets::new().with_default(LevelFilter::DEBUG)
    } else {
        Targets::new()
            .with_default(LevelFilter::OFF)
            .with_target("purple_runtime", LevelFilter::WARN)
            .with_target("purple_ebpf", LevelFilter::WARN)
            .with_target("purple_policy", LevelFilter::WARN)
    };
    tracing_subscriber::registry()
        .with(LogLayer(logger.clone()).with_filter(filter))
        .init();
    Ok(logger)
}

/// The error and its causes on one line, each cause once: library errors often
/// repeat their source in their own message.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !msg.contains(&s) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&s);
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_one_runc_object() {
        let l = Logger::open(None, LogFormat::Json).unwrap();
        let line = l.line(Level::ERROR, "container \"x\" does not exist");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"x\" does not exist");
        chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
    }

    #[test]
    fn text_line_is_logrus_shaped() {
        let l = Logger::open(None, LogFormat::Text).unwrap();
        let line = l.line(Level::WARN, "a \"b\"");
        assert!(line.starts_with("time=\""), "{line}");
        assert!(line.contains(" level=warn msg=\"a \\\"b\\\"\""), "{line}");
    }
}
