//! The peers warden is compared with, through their usual Rust clients and recipes.

pub(crate) mod etcd;
pub(crate) mod zookeeper;
