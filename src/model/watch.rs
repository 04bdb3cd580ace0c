//! Noticing a new artifact at a path, for hot reload.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::artifact::Artifact;
use super::error::ModelError;

/// Notices a new artifact at a path: a change of modification time or size.
pub struct ModelWatch {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
}

impl ModelWatch {
    /// Watches `path`, taking what is there now as already seen.
    pub fn new(path: PathBuf) -> Self {
        let seen = Self::stamp(&path);
        ModelWatch { path, seen }
    }

    fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// The new artifact, or why it cannot serve (unreadable, or a model the serving path does not
    /// run), if the file changed since the last call.
    pub fn changed(&mut self) -> Option<Result<Artifact, ModelError>> {
        let now = Self::stamp(&self.path);
        if now == self.seen || now.is_none() {
            return None;
        }
        self.seen = now;
        Some(Artifact::load(&self.path).and_then(|a| {
            a.check_servable(&self.path.display().to_string())?;
            Ok(a)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Feature, FeatureRange};

    #[test]
    fn a_new_model_is_served_and_a_broken_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        let salary = Artifact::load(Path::new("assets/model.json")).unwrap();
        salary.save(&path).unwrap();
        let mut watch = ModelWatch::new(path.clone());
        assert!(
            watch.changed().is_none(),
            "what is there at the start is seen"
        );

        let mut wide = salary.clone();
        wide.features.push(Feature {
            column: "age".into(),
            field: "age".into(),
            range: FeatureRange {
                min: 20.0,
                max: 60.0,
            },
            mean: None,
            std: None,
        });
        wide.linear_mut().unwrap().coefficients.push(1.0);
        wide.version = "wide0001".into();
        wide.save(&path).unwrap();
        // A model of other features serves too: the scorer reads its fields from then on.
        assert_eq!(watch.changed().expect("a change").unwrap(), wide);

        std::fs::write(&path, "{ half a file").unwrap();
        let refused = watch.changed().expect("a change").unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with(&format!("model artifact {} is corrupt", path.display())),
            "{refused}"
        );

        let mut other = salary.clone();
        other.version = "feed0002".into();
        other.save(&path).unwrap();
        assert_eq!(watch.changed().expect("a change").unwrap(), other);
    }
}
