//! The origin's stages move forward only, checked on every replica after every entry: for
//! one attempt of a referral, `Holding → Held → Confirming → Confirmed` or `→ Releasing →
//! Released` (several at once within one entry), never back, never out of a final stage;
//! a referral's attempt never goes down.

use ninety_engine::remote::RemoteStage as R;
use ninety_engine::{Engine, ReferralId};
use std::collections::BTreeMap;

/// What this replica saw of each cross-region bed after the previous entry.
#[derive(Clone, Debug, Default)]
pub struct Stages {
    seen: BTreeMap<ReferralId, (u32, R)>,
}

/// Whether `to` can follow `from` within one attempt (in one or more steps).
pub fn reachable(from: R, to: R) -> bool {
    let next: &[R] = match from {
        R::Holding => &[
            R::Held,
            R::Confirming,
            R::Confirmed,
            R::Releasing,
            R::Released,
        ],
        R::Held => &[R::Confirming, R::Confirmed, R::Releasing, R::Released],
        R::Confirming => &[R::Confirmed, R::Released],
        R::Releasing => &[R::Released],
        R::Confirmed | R::Released => &[],
    };
    from == to || next.contains(&to)
}

impl Stages {
    /// Learns the engine's stages as they are (after a restore: nothing to compare with).
    pub fn learn(&mut self, engine: &Engine) {
        self.seen = engine
            .remote()
            .all()
            .map(|(id, b)| (id, (b.attempt, b.stage)))
            .collect();
    }

    /// Compares the engine's stages with the previous entry's; what went back goes to `out`.
    pub fn entry(&mut self, index: u64, engine: &Engine, out: &mut Vec<String>) {
        let book = engine.remote();
        if self.seen.is_empty() && book.all().next().is_none() {
            return;
        }
        for (id, b) in book.all() {
            let now = (b.attempt, b.stage);
            match self.seen.insert(id, now) {
                Some((attempt, _)) if b.attempt < attempt => out.push(format!(
                    "referral {id}'s cross-region attempt went back from {attempt} to {} at \
                     index {index}",
                    b.attempt
                )),
                Some((attempt, stage)) if attempt == b.attempt && !reachable(stage, b.stage) => out
                    .push(format!(
                        "referral {id}'s cross-region bed (attempt {attempt}) went from {} to \
                         {} at index {index}",
                        stage.name(),
                        b.stage.name()
                    )),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_only_move_forward() {
        assert!(reachable(R::Holding, R::Confirmed));
        assert!(reachable(R::Held, R::Held));
        assert!(!reachable(R::Confirmed, R::Released));
        assert!(!reachable(R::Released, R::Held));
        assert!(!reachable(R::Confirming, R::Releasing));
        assert!(!reachable(R::Releasing, R::Held));
    }
}
