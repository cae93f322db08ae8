//! One client write as every backend sees it, and the tracker that turns backend
//! outcomes into the client's answer (README: HTTP API).

use std::sync::Arc;

use crate::config::Ack;

/// What a batch asks of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /write` with the body.
    Write,
    /// `POST /query` with statements that change schema or data (in `query`).
    Statement,
}

/// A checked, stamped write (or schema statement), shared by every backend without
/// copying.
#[derive(Debug)]
pub struct Batch {
    pub kind: Kind,
    /// The client's query string as forwarded (default `rp` already added), no `?`.
    pub query: Box<str>,
    /// The client's `Authorization` header, verbatim.
    pub auth: Option<Box<[u8]>>,
    /// Line protocol, every line ending in `\n`, every point timestamped.
    pub body: Vec<u8>,
    /// Point lines in `body`, for counters.
    pub points: usize,
    /// This change's number in the relay-wide order (`applied`): set when the batch
    /// is handed to the backends; 0 for changes of an earlier run.
    pub seq: u64,
}

pub type SharedBatch = Arc<Batch>;

/// What happened to one write at one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered 2xx.
    Delivered,
    /// A statement ran: the backend's 2xx answer, for the client.
    Answered { status: u16, body: Arc<[u8]> },
    /// The write is durably in the backend's spool.
    Spooled,
    /// The backend answered 4xx: the client's fault, passed through.
    Rejected { status: u16, body: Arc<[u8]> },
    /// 5xx (with its body), timeout, connection error or a full queue (no status).
    Failed {
        status: Option<u16>,
        body: Arc<[u8]>,
    },
}

/// The client's answer, once it is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    NoContent,
    /// A backend's successful answer to a statement, passed through.
    Body {
        status: u16,
        body: Arc<[u8]>,
    },
    /// Status and a JSON body (a backend's own, or ours).
    Error {
        status: u16,
        body: Arc<[u8]>,
    },
}

/// The 503 body when no backend said anything better.
pub const UNABLE_TO_WRITE: &[u8] = br#"{"error":"unable to write points"}"#;

/// Collects per-backend outcomes for one client request and decides the answer as
/// early as the `ack` rule allows; later outcomes are ignored.
#[derive(Debug)]
pub struct AckTracker {
    /// Backends needed delivered-or-spooled for a 204.
    need: usize,
    backends: usize,
    ok: usize,
    finished: usize,
    last_failure: Option<(u16, Arc<[u8]>)>,
    /// The first statement answer seen, returned when the request succeeds.
    answer: Option<(u16, Arc<[u8]>)>,
    decided: bool,
}

impl AckTracker {
    pub fn new(ack: Ack, backends: usize) -> AckTracker {
        let need = match ack {
            Ack::Any => 1,
            Ack::Quorum => backends / 2 + 1,
            Ack::All => backends,
        };
        AckTracker {
            need: need.max(1),
            backends,
            ok: 0,
            finished: 0,
            last_failure: None,
            answer: None,
            decided: false,
        }
    }

    pub fn is_decided(&self) -> bool {
        self.decided
    }

    /// Record one backend's outcome; `Some` the first time the answer is decided.
    pub fn record(&mut self, outcome: Outcome) -> Option<Answer> {
        if self.decided {
            return None;
        }
        self.finished += 1;
        match outcome {
            Outcome::Delivered | Outcome::Spooled | Outcome::Answered { .. } => {
                if let Outcome::Answered { status, body } = outcome {
                    self.answer.get_or_insert((status, body));
                }
                self.ok += 1;
                if self.ok >= self.need {
                    let answer = match self.answer.take() {
                        Some((status, body)) => Answer::Body { status, body },
                        None => Answer::NoContent,
                    };
                    return self.decide(answer);
                }
            }
            // A 4xx is the client's problem everywhere: say it at once.
            Outcome::Rejected { status, body } => {
                return self.decide(Answer::Error { status, body })
            }
            Outcome::Failed { status, body } => {
                if let Some(status) = status {
                    self.last_failure = Some((status, body));
                }
            }
        }
        let remaining = self.backends - self.finished;
        if self.ok + remaining < self.need {
            return Some(self.fail());
        }
        None
    }

    /// The client's time is up: whatever has not answered counts as failed.
    pub fn expire(&mut self) -> Option<Answer> {
        if self.decided {
            return None;
        }
        Some(self.fail())
    }

    fn fail(&mut self) -> Answer {
        self.decided = true;
        match self.last_failure.take() {
            // Under `any` the original passes the last 5xx through; under quorum and
            // all the failure is ours to describe.
            Some((status, body)) if self.need == 1 => Answer::Error { status, body },
            _ => Answer::Error {
                status: 503,
                body: Arc::from(UNABLE_TO_WRITE),
            },
        }
    }

    fn decide(&mut self, answer: Answer) -> Option<Answer> {
        self.decided = true;
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: u16) -> Outcome {
        Outcome::Failed {
            status: Some(status),
            body: Arc::from(&b"{\"error\":\"x\"}"[..]),
        }
    }

    #[test]
    fn any_answers_on_the_first_success() {
        let mut t = AckTracker::new(Ack::Any, 2);
        assert_eq!(t.record(failed(500)), None);
        assert_eq!(t.record(Outcome::Spooled), Some(Answer::NoContent));
        assert_eq!(t.record(Outcome::Delivered), None);
    }

    #[test]
    fn any_passes_the_last_5xx_through_when_all_fail() {
        let mut t = AckTracker::new(Ack::Any, 2);
        assert_eq!(t.record(failed(500)), None);
        let answer = t.record(failed(502)).unwrap();
        assert!(matches!(answer, Answer::Error { status: 502, .. }));
    }

    #[test]
    fn no_status_at_all_is_503() {
        let mut t = AckTracker::new(Ack::Any, 1);
        let none = Outcome::Failed {
            status: None,
            body: Arc::from(&b""[..]),
        };
        assert!(matches!(
            t.record(none),
            Some(Answer::Error { status: 503, .. })
        ));
    }

    #[test]
    fn rejected_is_passed_through_at_once() {
        let mut t = AckTracker::new(Ack::All, 3);
        let body: Arc<[u8]> = Arc::from(&b"{\"error\":\"database not found\"}"[..]);
        let answer = t.record(Outcome::Rejected {
            status: 404,
            body: body.clone(),
        });
        assert_eq!(answer, Some(Answer::Error { status: 404, body }));
    }

    #[test]
    fn quorum_needs_a_majority_and_fails_once_it_cannot_get_one() {
        let mut t = AckTracker::new(Ack::Quorum, 3);
        assert_eq!(t.record(Outcome::Delivered), None);
        assert_eq!(t.record(Outcome::Delivered), Some(Answer::NoContent));

        let mut t = AckTracker::new(Ack::Quorum, 3);
        assert_eq!(t.record(failed(500)), None);
        assert!(matches!(
            t.record(failed(500)),
            Some(Answer::Error { status: 503, .. })
        ));
    }

    #[test]
    fn all_needs_every_backend() {
        let mut t = AckTracker::new(Ack::All, 2);
        assert_eq!(t.record(Outcome::Delivered), None);
        assert!(matches!(
            t.record(failed(500)),
            Some(Answer::Error { status: 503, .. })
        ));
        let mut t = AckTracker::new(Ack::All, 2);
        assert_eq!(t.record(Outcome::Delivered), None);
        assert_eq!(t.record(Outcome::Spooled), Some(Answer::NoContent));
    }

    #[test]
    fn expiry_decides_once() {
        let mut t = AckTracker::new(Ack::All, 2);
        assert_eq!(t.record(Outcome::Delivered), None);
        assert!(matches!(
            t.expire(),
            Some(Answer::Error { status: 503, .. })
        ));
        assert_eq!(t.expire(), None);
        assert_eq!(t.record(Outcome::Delivered), None);
    }
}
