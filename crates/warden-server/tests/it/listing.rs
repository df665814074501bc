//! A directory too large for one message is listed in pages.

use warden_client::Consistency;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

/// A child name of 248 bytes, unique per `i`.
fn name(i: usize) -> String {
    format!("{i:08}-{}", "n".repeat(239))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_20096_long_names_is_listed_in_pages() {
    const CHILDREN: usize = 20_096;
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    client.create("/big", "", warden_core::CreateMode::PERSISTENT).await.unwrap();
    let create = |i: usize| warden_client::TxnOp::Create {
        path: format!("/big/{}", name(i)),
        data: Default::default(),
        mode: warden_core::CreateMode::PERSISTENT,
    };
    for start in (0..CHILDREN).step_by(128) {
        let ops = (start..CHILDREN.min(start + 128)).map(create).collect();
        let done = client.txn(vec![], ops).await;
        assert!(done.unwrap().succeeded);
    }
    // Together about 5.5 MB, more than a 4 MiB message: one answer could not carry them.
    let all = client.children("/big", Consistency::Linearizable).await.unwrap();
    assert_eq!(all.len(), CHILDREN);
    assert!(all.iter().enumerate().all(|(i, (n, _))| *n == name(i)), "sorted, none twice");

    // A page of 10, then the next one after its last name.
    let page = client.children_page("/big", Consistency::Serializable, "", 10).await.unwrap();
    assert_eq!(page.children.len(), 10);
    assert!(page.more);
    let next = client.children_page("/big", Consistency::Serializable, &name(9), 10).await.unwrap();
    assert_eq!(next.children.first().map(|(n, _)| n.clone()), Some(name(10)));
    let last = client
        .children_page("/big", Consistency::Serializable, &name(CHILDREN - 3), 10)
        .await
        .unwrap();
    assert_eq!(last.children.len(), 2);
    assert!(!last.more);
    cluster.stop().await;
}
