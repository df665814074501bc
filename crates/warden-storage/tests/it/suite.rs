//! openraft's own storage test suite, run against fresh fjall stores.

use openraft::testing::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb};
use tempfile::TempDir;
use warden_core::Limits;
use warden_storage::{LogStore, RaftStorageError, StateMachineStore, StorageError, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), RaftStorageError> {
        let dir = TempDir::new().map_err(|e| {
            StorageError::Io { context: "tempdir", source: e }
                .into_raft(ErrorSubject::Store, ErrorVerb::Write)
        })?;
        let storage = warden_storage::open(dir.path(), Limits::default())
            .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Write))?;
        Ok((dir, storage.log, storage.state_machine))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), RaftStorageError> {
    Suite::test_all(Builder)
}
