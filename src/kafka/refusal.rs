//! The first refusal for want of a permission that a producer heard: a client that is not
//! allowed to write stops on it rather than fail every send, and says why in one line.

use std::sync::OnceLock;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The first authorization refusal a producer heard (of a topic, of the cluster, or of a
/// transactional id), kept once: later ones change nothing.
#[derive(Debug, Default)]
pub struct Refusal(OnceLock<RDKafkaErrorCode>);

impl Refusal {
    /// Notes `error` if it is a refusal for want of a permission; says whether it was.
    pub fn note(&self, error: &KafkaError) -> bool {
        match error.rdkafka_error_code() {
            Some(
                code @ (RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed),
            ) => {
                let _ = self.0.set(code);
                true
            }
            _ => false,
        }
    }

    /// The first refusal noted, if any.
    pub fn get(&self) -> Option<RDKafkaErrorCode> {
        self.0.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_is_kept_and_other_errors_are_not_refusals() {
        let refusal = Refusal::default();
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(!refusal.note(&timed_out));
        assert_eq!(refusal.get(), None);
        let topic = KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed);
        let cluster = KafkaError::Global(RDKafkaErrorCode::ClusterAuthorizationFailed);
        assert!(refusal.note(&topic));
        assert!(refusal.note(&cluster));
        assert_eq!(
            refusal.get(),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed)
        );
        let id = Refusal::default();
        assert!(id.note(&KafkaError::MessageProduction(
            RDKafkaErrorCode::TransactionalIdAuthorizationFailed
        )));
        assert_eq!(
            id.get(),
            Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed)
        );
    }
}
